package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// appSecret is metasim's app secret for the bench world (a local fake).
const appSecret = "bench-app-secret"

// planBudget is the plan's figure for every token.
var planBudget = metasim.Budget{Calls: 200, Window: time.Hour}

// system is the real parts one engine runs against in one scenario: a
// fresh metasim world, a fresh store and (for our engine) a fresh Temporal
// dev server, so no run sees another's state.
type system struct {
	sim      *metasim.Sim
	simURL   string
	st       store.Store
	tenants  config.Tenants
	temporal client.Client // nil for an engine without Temporal
	closers  []func()
}

type systemOptions struct {
	seed        int64
	speed       float64
	dir         string // scratch folder for this run
	databaseURL string // "" for a SQLite file under dir
	temporalCLI string // "" when the engine needs no Temporal
}

func startSystem(ctx context.Context, o systemOptions) (*system, error) {
	s := &system{}
	fail := func(err error) (*system, error) { s.close(); return nil, err }
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fail(err)
	}
	// The evidence scenario's world: 10 standard and 5 premium brands, two
	// media and a Page post each (45 objects), tokens at the plan's budget.
	s.sim = metasim.New(metasim.Config{Seed: o.seed, Brands: 15, Premium: 5, MediaPerBrand: 2, PostsPerBrand: 1,
		Speed: o.speed, AppSecret: appSecret, PlatformBudget: planBudget, TenantBudget: planBudget})
	srv := httptest.NewServer(s.sim.Handler())
	s.simURL = srv.URL + "/"
	s.closers = append(s.closers, srv.Close, func() { _ = s.sim.Close() })

	dsn := "sqlite:" + filepath.Join(o.dir, "verifier.db")
	if o.databaseURL != "" {
		var dropSchema func() error
		var err error
		if dsn, dropSchema, err = testenv.NewSchema(ctx, o.databaseURL); err != nil {
			return fail(fmt.Errorf("bench database: %w", err))
		}
		s.closers = append(s.closers, func() { _ = dropSchema() })
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return fail(fmt.Errorf("open store: %w", err))
	}
	s.st = st
	s.closers = append(s.closers, func() { _ = st.Close() })
	path, secrets := filepath.Join(o.dir, "tenants.json"), filepath.Join(o.dir, "secrets")
	if err := s.sim.WriteEngineConfig(path, secrets); err != nil {
		return fail(err)
	}
	if s.tenants, err = config.LoadTenants(path); err != nil {
		return fail(err)
	}
	if err := s.tenants.Apply(ctx, st); err != nil {
		return fail(err)
	}

	if o.temporalCLI != "" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		dev, err := testenv.StartDevServer(sctx, o.temporalCLI, io.Discard)
		if err != nil {
			return fail(err)
		}
		s.temporal = dev.Client()
		s.closers = append(s.closers, func() { _ = dev.Stop() })
	}
	return s, nil
}

// close stops the parts in the reverse order of their start.
func (s *system) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// serveHTTP serves h on a free local port until the returned stop.
func serveHTTP(h http.Handler) (url string, stop func()) {
	srv := httptest.NewServer(h)
	return srv.URL, srv.Close
}

var errInterrupted = errors.New("interrupted")
