// Package testenv starts the real parts integration tests (and the bench)
// run against: the Temporal dev server (the CLI binary built by `make
// bin/temporal`), and the task store on SQLite and, when TEST_DATABASE_URL
// is set, PostgreSQL.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
)

// RepoRoot is the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// TemporalCLI is the path of the Temporal CLI: $TEMPORAL_CLI, or bin/temporal.
// A missing binary fails the test: integration tests never skip.
func TemporalCLI(t testing.TB) string {
	t.Helper()
	path := os.Getenv("TEMPORAL_CLI")
	if path == "" {
		path = filepath.Join(RepoRoot(t), "bin", "temporal")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run `make test` (it builds bin/temporal from tools/go.mod) or set TEMPORAL_CLI", path)
	}
	return path
}

// DevServer starts a Temporal dev server on free ports with an in-memory
// database and returns a client to it; both stop when the test ends.
func DevServer(t testing.TB) client.Client {
	t.Helper()
	c, _ := DevServerAt(t)
	return c
}

// DevServerAt is DevServer, also returning the frontend's host:port, for
// tests that drive the server with the `temporal` CLI as operators do.
func DevServerAt(t testing.TB) (client.Client, string) {
	t.Helper()
	srv := devServer(t, nil)
	return srv.Client(), srv.FrontendHostPort()
}

// DevServerWithUI is DevServerAt with the Temporal Web UI on a free port,
// decoding payloads through the codec server at codecEndpoint (none when
// empty). It returns the client, the frontend's host:port and the UI's
// base URL (http://127.0.0.1:<port>, also the origin the codec server must
// allow), once the UI answers.
func DevServerWithUI(t testing.TB, codecEndpoint string) (c client.Client, hostPort, uiURL string) {
	t.Helper()
	port := FreePort(t)
	srv := devServer(t, func(o *testsuite.DevServerOptions) {
		o.EnableUI, o.UIPort = true, port
		if codecEndpoint != "" {
			o.ExtraArgs = append(o.ExtraArgs, "--ui-codec-endpoint", codecEndpoint)
		}
	})
	host, _, err := net.SplitHostPort(srv.FrontendHostPort())
	if err != nil {
		t.Fatal(err)
	}
	uiURL = "http://" + net.JoinHostPort(host, port)
	Eventually(t, time.Minute, 200*time.Millisecond, "the Web UI at "+uiURL, func() (bool, string) {
		resp, err := http.Get(uiURL + "/")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return srv.Client(), srv.FrontendHostPort(), uiURL
}

// FreePort is a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// devServer starts a dev server as StartDevServer does, with its options
// changed by tune (nil: none), and stops it when the test ends.
func devServer(t testing.TB, tune func(*testsuite.DevServerOptions)) *testsuite.DevServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	opts := devServerOptions(TemporalCLI(t), out)
	if tune != nil {
		tune(&opts)
	}
	srv, err := startDevServer(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Logf("stop dev server: %v", err)
		}
	})
	return srv
}

// StartDevServer starts a Temporal dev server from the CLI at cli, on free
// ports with an in-memory database, its output to out; Stop stops it. The
// bench (bench) starts its servers with it too.
func StartDevServer(ctx context.Context, cli string, out io.Writer) (*testsuite.DevServer, error) {
	return startDevServer(ctx, devServerOptions(cli, out))
}

// devServerOptions are StartDevServer's: headless (no UI), logging errors only.
func devServerOptions(cli string, out io.Writer) testsuite.DevServerOptions {
	return testsuite.DevServerOptions{
		ExistingPath: cli,
		LogLevel:     "error",
		ClientOptions: &client.Options{
			Namespace: "default",
			Logger:    logging.Temporal(zap.NewNop()),
		},
		Stdout: out,
		Stderr: out,
	}
}

func startDevServer(ctx context.Context, opts testsuite.DevServerOptions) (*testsuite.DevServer, error) {
	srv, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start Temporal dev server: %w", err)
	}
	return srv, nil
}

// Store backends.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Backends lists the store backends every store-backed test runs against.
var Backends = []string{SQLite, Postgres}

// SkipPostgresMessage is the reason Postgres tests skip when the variable is unset.
const SkipPostgresMessage = "TEST_DATABASE_URL not set: skipping PostgreSQL tests (CI sets it; see .ci/run)"

// FreshDSN returns the DSN of an empty database that lives as long as t: a
// new SQLite file in a nested temporary folder (Open must create it), or a
// new PostgreSQL schema in TEST_DATABASE_URL, dropped when the test ends.
// Without TEST_DATABASE_URL, a Postgres test skips with SkipPostgresMessage.
func FreshDSN(t testing.TB, backend string) string {
	t.Helper()
	switch backend {
	case SQLite:
		return "sqlite:" + filepath.Join(t.TempDir(), "data", "verifier.db")
	case Postgres:
		base := os.Getenv("TEST_DATABASE_URL")
		if base == "" {
			t.Skip(SkipPostgresMessage)
		}
		return freshSchema(t, base)
	}
	t.Fatalf("testenv: unknown backend %q", backend)
	return ""
}

// OpenStore opens a fresh, empty store; it is closed when the test ends.
func OpenStore(t testing.TB, backend string) (store.Store, string) {
	t.Helper()
	dsn := FreshDSN(t, backend)
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close %s store: %v", backend, err)
		}
	})
	return st, dsn
}

// freshSchema creates a schema of the test's own, since tests of other
// packages may use the same database at the same time, and returns a DSN
// whose search_path points at it.
func freshSchema(t testing.TB, base string) string {
	t.Helper()
	dsn, drop, err := NewSchema(context.Background(), base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	// Registered before any store of the test is opened, so it runs after
	// they are all closed.
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return dsn
}

// NewSchema creates an empty schema with a random name in the PostgreSQL
// database at base and returns a DSN whose search_path points at it, and a
// func that drops it.
func NewSchema(ctx context.Context, base string) (dsn string, drop func() error, err error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("database URL: %w", err)
	}
	buf := make([]byte, 8)
	_, _ = rand.Read(buf)
	schema := "t_" + hex.EncodeToString(buf)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop = func() error {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		return nil
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// SeedWorld loads metasim's tenants and tokens into st the way `starter
// setup -tenants` does, with the token secrets in files under a temporary
// folder, and returns the tenants file and that folder.
func SeedWorld(t testing.TB, sim *metasim.Sim, st store.Store) (config.Tenants, string) {
	t.Helper()
	f, secrets, err := SeedWorldIn(context.Background(), sim, st, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f, secrets
}

// SeedWorldIn is SeedWorld for callers without a test (the chaos harness):
// the tenants file (tenants.json) and the token secrets (secrets/) go under
// dir, which it returns with the tenants.
func SeedWorldIn(ctx context.Context, sim *metasim.Sim, st store.Store, dir string) (config.Tenants, string, error) {
	path, secrets := filepath.Join(dir, "tenants.json"), filepath.Join(dir, "secrets")
	if err := sim.WriteEngineConfig(path, secrets); err != nil {
		return config.Tenants{}, "", err
	}
	f, err := config.LoadTenants(path)
	if err != nil {
		return config.Tenants{}, "", err
	}
	if err := f.Apply(ctx, st); err != nil {
		return config.Tenants{}, "", fmt.Errorf("load tenants into the store: %w", err)
	}
	return f, secrets, nil
}

// Eventually polls cond every interval until it returns true or timeout passes.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != last {
			t.Logf("waiting for %s: %s", what, state)
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(interval)
	}
}
