package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// system is the real parts one scenario runs on, each fresh: a Temporal dev
// server process on a database file of its own (so it can be stopped and
// started again on it), the task store (a fresh PostgreSQL schema, or an
// SQLite file), metasim over HTTP, and the worker binary as a process.
type system struct {
	o   Options
	dir string // this scenario's folder: logs/, secrets, the dev server's database
	log func(format string, args ...any)

	dev         *process
	devHostPort string
	temporal    client.Client

	sim    *metasim.Sim
	simURL string

	st          store.Store // the harness's own connection (application_name chaos-harness)
	dsn         string      // the store's DSN without application_name
	backend     string      // "postgres" or "sqlite"
	workerApp   string      // application_name of the worker's PostgreSQL connections
	databaseURL string      // admin connection (pg_terminate_backend)

	worker      *process
	webhookAddr string
	apiAddr     string
	cfg         config.Config
	tenants     config.Tenants
	secretsDir  string

	// Secrets the run must never leak: name → value.
	secrets map[string]string
	apiKeys map[string]string // tenant → platform API key

	closers []func()
}

// verifyTokenEnv carries the webhook verify token to the worker.
const verifyTokenEnv = "CHAOS_WEBHOOK_VERIFY_TOKEN"

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startSystem brings up every part and the engine's setup, as `starter
// setup` does, with the worker running and metasim subscribed to its
// webhooks.
func startSystem(ctx context.Context, o Options, sc Scenario, dir string, log func(string, ...any)) (_ *system, err error) {
	s := &system{o: o, dir: dir, log: log, secrets: map[string]string{}, apiKeys: map[string]string{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}

	// The Temporal dev server, on a fixed port and database file.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s.devHostPort = "127.0.0.1:" + port
	s.dev = &process{name: "devserver", path: o.TemporalCLI, dir: filepath.Join(dir, "logs"), args: []string{
		"server", "start-dev", "--db-filename", filepath.Join(dir, "temporal.db"), "--port", port, "--ip", "127.0.0.1",
		"--headless", "--log-level", "warn",
	}}
	if err := s.startDevServer(ctx); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.dev.stop(20 * time.Second) })
	s.temporal, err = client.Dial(client.Options{HostPort: s.devHostPort, Namespace: "default", Logger: logging.Temporal(zap.NewNop())})
	if err != nil {
		return nil, fmt.Errorf("connect to the dev server: %w", err)
	}
	s.closers = append(s.closers, s.temporal.Close)

	// metasim, with a secret of its own and budgets far above the load.
	appSecret := randomSecret(24)
	s.secrets["app secret"] = appSecret
	s.sim = metasim.New(metasim.Config{
		Seed: o.Seed, Brands: o.Brands, Premium: o.Premium, MediaPerBrand: 3, PostsPerBrand: 2,
		Speed: o.Speed, AppSecret: appSecret,
		PlatformBudget: metasim.Budget{Calls: o.Budget, Window: time.Hour},
		TenantBudget:   metasim.Budget{Calls: o.Budget, Window: time.Hour},
	})
	simSrv := httptest.NewServer(s.sim.Handler())
	s.simURL = simSrv.URL + "/"
	s.closers = append(s.closers, simSrv.Close, func() { _ = s.sim.Close() })
	for _, t := range s.sim.World().Tokens {
		s.secrets["token "+t.ID] = t.Value
	}

	// The store.
	if o.DatabaseURL != "" {
		dsn, drop, err := testenv.NewSchema(ctx, o.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("chaos database: %w", err)
		}
		s.closers = append(s.closers, func() {
			if err := drop(); err != nil {
				log("drop schema: %v", err)
			}
		})
		u, _ := url.Parse(dsn)
		s.dsn, s.backend, s.databaseURL = dsn, "postgres", o.DatabaseURL
		s.workerApp = "chaos-worker-" + u.Query().Get("search_path")
	} else {
		s.dsn, s.backend = "sqlite:"+filepath.Join(dir, "verifier.db"), "sqlite"
	}
	s.st, err = store.Open(ctx, withAppName(s.dsn, "chaos-harness"))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.st.Close() })
	if s.tenants, s.secretsDir, err = testenv.SeedWorldIn(ctx, s.sim, s.st, dir); err != nil {
		return nil, err
	}
	for _, t := range s.tenants.Tenants {
		key := randomSecret(32)
		if err := s.st.AddAPIKey(ctx, store.APIKey{Tenant: t.ID, Name: "chaos", Key: key, Now: time.Now()}); err != nil {
			return nil, err
		}
		s.apiKeys[t.ID] = key
		s.secrets["API key "+t.ID] = key
	}

	// The engine's configuration: the Schedule fires every wall second at
	// speed 60 (its least interval).
	s.cfg = config.Default()
	s.cfg.Speed = o.Speed
	if s.cfg.Scaled(s.cfg.Interval) < time.Second {
		stretched := time.Duration(o.Speed) * time.Second
		s.cfg.BatchSize = min(10000, int(int64(s.cfg.BatchSize)*int64(stretched)/int64(s.cfg.Interval)))
		s.cfg.BacklogBatchSize = min(10000, int(int64(s.cfg.BacklogBatchSize)*int64(stretched)/int64(s.cfg.Interval)))
		s.cfg.Interval = stretched
	}
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}

	// The worker, as its own process.
	verifyToken := randomSecret(18)
	s.secrets["webhook verify token"] = verifyToken
	if s.webhookAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if s.apiAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	s.worker = &process{name: "worker", path: o.WorkerBinary, dir: filepath.Join(dir, "logs"),
		env: []string{verifyTokenEnv + "=" + verifyToken},
		args: []string{
			"-temporal-address", s.devHostPort, "-store", withAppName(s.dsn, s.workerApp),
			"-graph-url", s.simURL, "-app-id", s.sim.World().AppID,
			"-app-secret", "file:" + filepath.Join(s.secretsDir, "app_secret"),
			"-platform-token", s.tenants.PlatformToken, "-speed", fmt.Sprint(o.Speed),
			"-interval", s.cfg.Interval.String(), "-batch-size", itoa(s.cfg.BatchSize), "-backlog-batch-size", itoa(s.cfg.BacklogBatchSize),
			"-webhook-addr", s.webhookAddr, "-webhook-verify-token", "env:" + verifyTokenEnv,
			"-api-addr", s.apiAddr, "-log-level", "info",
		}}
	if err := s.startWorker(ctx); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = s.worker.stop(30 * time.Second) })

	// What `starter setup` does.
	if _, err := workflows.EnsureSearchAttributes(ctx, s.temporal, "default"); err != nil {
		return nil, err
	}
	if _, err := workflows.EnsureSchedule(ctx, s.temporal, workflows.NewScheduleConfig(s.cfg)); err != nil {
		return nil, err
	}
	if _, err := workflows.EnsurePurgeSchedule(ctx, s.temporal, s.cfg); err != nil {
		return nil, err
	}
	if _, err := workflows.EnsureRunning(ctx, s.temporal, s.cfg); err != nil {
		return nil, err
	}

	// Meta's webhooks to the worker, duplicated as the scenario says.
	if err := s.sim.Subscribe(metasim.WebhookOptions{
		URL: "http://" + s.webhookAddr + "/webhooks/meta", VerifyToken: verifyToken,
		Shape: metasim.ShapeMixed, Duplicates: sc.WebhookDuplicates,
	}); err != nil {
		return nil, fmt.Errorf("subscribe metasim's webhooks: %w", err)
	}
	return s, nil
}

// startDevServer starts the dev server process and waits until it serves.
func (s *system) startDevServer(ctx context.Context) error {
	if err := s.dev.start(); err != nil {
		return err
	}
	return s.waitTemporal(ctx, 2*time.Minute)
}

// waitTemporal waits until the dev server answers a health check.
func (s *system) waitTemporal(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		if s.temporal != nil {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = s.temporal.CheckHealth(hctx, &client.CheckHealthRequest{})
			cancel()
		} else {
			var c client.Client
			c, err = client.Dial(client.Options{HostPort: s.devHostPort, Namespace: "default", Logger: logging.Temporal(zap.NewNop())})
			if err == nil {
				c.Close()
			}
		}
		if err == nil {
			return nil
		}
		if gone, how := s.dev.exited(); gone {
			return fmt.Errorf("the dev server exited (%s); see %s", how, s.dev.logs[len(s.dev.logs)-1])
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the dev server at %s did not answer within %v: %w", s.devHostPort, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startWorker starts the worker process and waits until its API answers.
func (s *system) startWorker(ctx context.Context) error {
	if err := s.worker.start(); err != nil {
		return err
	}
	return waitHTTP(ctx, "http://"+s.apiAddr+"/v1/openapi.json", time.Minute, s.worker)
}

// terminateWorkerConnections ends every PostgreSQL backend of the worker
// (and only the worker's: its DSN names its application) and returns how
// many it ended.
func (s *system) terminateWorkerConnections(ctx context.Context) (int, error) {
	if s.backend != "postgres" {
		return 0, errors.New("no PostgreSQL store")
	}
	conn, err := pgx.Connect(ctx, s.databaseURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`, s.workerApp).Scan(&n)
	return n, err
}

func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + port, nil
}

// withAppName sets application_name on a PostgreSQL DSN (pgx sends it as
// a run-time parameter, so pg_stat_activity shows it); other DSNs are
// returned as they are.
func withAppName(dsn, name string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}
