package metasim_test

import (
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/metasim"
)

const (
	testAppID     = "100000000000001"
	testAppSecret = "s3cr3t-app-secret"
	testVersion   = "v21.0"
)

// fakeClock is a settable wall clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	sim   *metasim.Sim
	srv   *httptest.Server
	clock *fakeClock
	world metasim.World
}

// newEnv starts a sim with a fake clock and the test app secret. cfg fields
// left zero get small, fast defaults.
func newEnv(t *testing.T, cfg metasim.Config) *env {
	t.Helper()
	clock := newClock()
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = testAppSecret
	}
	if cfg.Users == 0 {
		cfg.Users = 200
	}
	if cfg.NoiseComments == 0 {
		cfg.NoiseComments = 30
	}
	sim := metasim.New(cfg)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &env{sim: sim, srv: srv, clock: clock, world: sim.World()}
}

func (e *env) token(id string) string {
	for _, t := range e.world.Tokens {
		if t.ID == id {
			return t.Value
		}
	}
	panic("no token " + id)
}

func (e *env) brand(tenant string) metasim.Brand {
	for _, b := range e.world.Brands {
		if b.Tenant == tenant {
			return b
		}
	}
	panic("no brand " + tenant)
}

// session is how the engine talks to Meta: huandu with appsecret_proof.
func (e *env) session(token string) *facebook.Session {
	return e.sessionWith(facebook.New(testAppID, testAppSecret), token, true)
}

func (e *env) sessionWith(app *facebook.App, token string, proof bool) *facebook.Session {
	s := app.Session(token)
	s.BaseURL = e.srv.URL + "/"
	s.Version = testVersion
	s.HttpClient = e.srv.Client()
	if err := s.EnableAppsecretProof(proof); err != nil {
		panic(err)
	}
	return s
}

func fbError(t *testing.T, err error) *facebook.Error {
	t.Helper()
	var fe *facebook.Error
	if !errors.As(err, &fe) {
		t.Fatalf("want *facebook.Error, got %T: %v", err, err)
	}
	return fe
}

// getAll follows Result.Paging through every page and returns all items.
func getAll(t *testing.T, s *facebook.Session, path string, params facebook.Params) []facebook.Result {
	t.Helper()
	res, err := s.Get(path, params)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	p, err := res.Paging(s)
	if err != nil {
		t.Fatalf("paging %s: %v", path, err)
	}
	var all []facebook.Result
	for {
		all = append(all, p.Data()...)
		noMore, err := p.Next()
		if err != nil {
			t.Fatalf("next page of %s: %v", path, err)
		}
		if noMore {
			return all
		}
	}
}

func str(r facebook.Result, field ...string) string {
	v, _ := r.GetField(field...).(string)
	return v
}

func parseMetaTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02T15:04:05-0700", s)
	if err != nil {
		t.Fatalf("timestamp %q: %v", s, err)
	}
	return tm
}
