package systemtest_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap/zaptest"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/internal/vault"
	"github.com/socialproof/verifier/workflows"
)

// tokenWorld is the engine with tenants' tokens: a vault, the platform API
// (connect, deauthorization callback) over HTTP, and metasim minting tokens.
type tokenWorld struct {
	*systemtest.World
	eng    *engine.Engine
	api    *httptest.Server
	apiKey string
	tenant string // the premium tenant connecting its tokens
}

func vaultKey(id string, b byte) codec.Key {
	return codec.Key{ID: id, Secret: bytes.Repeat([]byte{b}, codec.KeySize)}
}

// startTokenWorld starts the engine with workerKeys and the API with
// apiKeys: in a rotation the two can differ for a while.
func startTokenWorld(t *testing.T, workerKeys, apiKeys *vault.Vault) *tokenWorld {
	t.Helper()
	const appSecret = "token-test-secret"
	// The API server exists before metasim, which posts its deauthorization
	// callbacks there.
	var handler atomic.Value
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(apiSrv.Close)
	sim := metasim.New(metasim.Config{Seed: 11, Speed: systemtest.Speed, AppSecret: appSecret, Brands: 2, Premium: 1,
		PlatformBudget: metasim.Budget{Calls: 20_000, Window: time.Hour}, TenantBudget: metasim.Budget{Calls: 5_000, Window: time.Hour},
		DeauthorizeURL: apiSrv.URL + api.DeauthorizePath})
	graphSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(graphSrv.Close)
	st, dsn := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)
	if err := workflows.EnsureAppToken(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Speed, cfg.BatchSize, cfg.Mode = systemtest.Speed, 5000, workflows.ModeVerify
	c, addr := testenv.DevServerAt(t)
	eng := systemtest.StartEngine(t, c, cfg, st, sim, graphSrv.URL, appSecret, tenants.PlatformToken, nil,
		func(d *engine.Deps) { d.Vault = workerKeys })
	if _, err := workflows.EnsureRunning(context.Background(), c, cfg); err != nil { // the Governor hears about tokens
		t.Fatal(err)
	}
	w := &tokenWorld{World: &systemtest.World{Sim: sim, C: c, Addr: addr, St: st, Cfg: cfg, Tenants: tenants, Eng: eng}, eng: eng, api: apiSrv}
	w.tenant = w.TenantsBy(store.TierPremium)[0]
	w.apiKey = "key-" + w.tenant + "-0123456789abcdef0123456789abcdef"
	if err := st.AddAPIKey(context.Background(), store.APIKey{Tenant: w.tenant, Name: "test", Key: w.apiKey, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// The API's connector opens tokens with the API's keys.
	apiEng := engine.New(engine.Deps{Store: st, Graph: eng.Tokens.Sessions.Graph, PlatformTokenID: tenants.PlatformToken, Vault: apiKeys,
		Temporal: c, Speed: cfg.Speed})
	handler.Store((&api.Server{Store: st, Tokens: apiEng.Connector, Log: zaptest.NewLogger(t)}).Handler())
	t.Cleanup(func() { rawTokenRowsHoldNoValue(t, dsn, sim) })
	return w
}

// connect posts a token to POST /v1/tokens with the tenant's key.
func (w *tokenWorld) connect(t *testing.T, value string) (int, api.TokenView, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"access_token": value})
	req, _ := http.NewRequest(http.MethodPost, w.api.URL+"/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw := new(bytes.Buffer)
	_, _ = raw.ReadFrom(resp.Body)
	if strings.Contains(raw.String(), value) {
		t.Errorf("the API's answer holds the token value: %s", raw)
	}
	var view api.TokenView
	_ = json.Unmarshal(raw.Bytes(), &view)
	return resp.StatusCode, view, raw.String()
}

func (w *tokenWorld) mint(t *testing.T, o metasim.MintOptions) metasim.Token {
	t.Helper()
	o.Tenant = w.tenant
	tok, err := w.Sim.MintToken(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// stored is the tenant's token row.
func (w *tokenWorld) stored(t *testing.T) store.Token {
	t.Helper()
	tok, err := w.St.Token(context.Background(), tokens.TokenIDFor(w.tenant))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// callsBy counts metasim's requests made with the given token.
func (w *tokenWorld) callsBy(id string) int { return w.Calls()[id] }

// metasimTokensOf lists the ids of the tenant's tokens in metasim now.
func (w *tokenWorld) metasimTokens() map[string]bool {
	ids := map[string]bool{}
	for _, tk := range w.Sim.World().Tokens {
		ids[tk.ID] = true
	}
	return ids
}

// runClaims submits n claims of the tenant (10% false) and waits for every
// verdict.
func (w *tokenWorld) runClaims(t *testing.T, n int) {
	t.Helper()
	w.Submit(t, w.Generate(t, n, 0.1, w.tenant))
	w.WaitDecided(t, time.Minute)
}

// A premium tenant's own tokens through their whole life: refused when
// they cannot work (another app's, missing a scope, expired, unknown) with
// nothing stored; a short-lived token exchanged for a long-lived one and
// used; the token expiring in metasim mid-run, caught by verification and
// by the health Schedule, the tenant falling back to the platform token
// and returning when it reconnects; an expiring token warned about; Meta's
// deauthorization callback revoking a token; master-key rotation keeping
// every token usable. Every claim is decided as the ground truth says, and
// no table row holds a token value in clear.
func TestTenantTokenLifecycle(t *testing.T) {
	k1, k2 := vaultKey("k1", 1), vaultKey("k2", 2)
	// The workers hold both keys, as an operator rolling out a rotation
	// has them do; the API still seals under k1 alone.
	apiKeys, _ := vault.New(k1)
	workerKeys, _ := vault.New(k1, k2)
	w := startTokenWorld(t, workerKeys, apiKeys)
	ctx := context.Background()
	configured := w.stored(t)
	if configured.SecretRef == "" || configured.Sealed != nil {
		t.Fatalf("the tenant's configured token should be a reference: %+v", configured)
	}

	// Refused, each with its reason, and nothing stored.
	refusals := []struct {
		name   string
		value  func() string
		status int
		reason string
	}{
		{"another app's token", func() string { return w.mint(t, metasim.MintOptions{Kind: "user_long", App: "other"}).Value }, 422, "app"},
		{"missing a scope", func() string {
			return w.mint(t, metasim.MintOptions{Kind: "user_long", Scopes: []string{"instagram_basic", "pages_read_engagement", "pages_read_user_content"}}).Value
		}, 422, "missing instagram_manage_comments"},
		{"expired", func() string { return w.mint(t, metasim.MintOptions{Kind: "user_long", ExpiresIn: -time.Hour}).Value }, 422, "xpired"},
		{"unknown", func() string { return "EAAB" + strings.Repeat("x", 40) }, 422, "invalid"},
	}
	for _, r := range refusals {
		status, _, body := w.connect(t, r.value())
		if status != r.status || !strings.Contains(body, r.reason) {
			t.Errorf("%s: %d %s, want %d with %q", r.name, status, body, r.status, r.reason)
		}
	}
	if after := w.stored(t); after.SecretRef != configured.SecretRef || after.Sealed != nil {
		t.Fatalf("a refused token changed the stored one: %+v", after)
	}

	// A short-lived token is exchanged, stored sealed, and verifies claims.
	before := w.metasimTokens()
	short := w.mint(t, metasim.MintOptions{Kind: "user_short"})
	status, view, body := w.connect(t, short.Value)
	if status != http.StatusCreated || view.State != string(store.TokenHealthy) || view.ExpiresAt == nil {
		t.Fatalf("short-lived token: %d %s", status, body)
	}
	var long string
	for id := range w.metasimTokens() {
		if !before[id] && id != short.ID {
			long = id
		}
	}
	if long == "" {
		t.Fatal("no long-lived token came out of the exchange")
	}
	sealed := w.stored(t)
	if sealed.Sealed == nil || sealed.SecretRef != "" || sealed.Sealed.MasterKeyID != "k1" {
		t.Fatalf("connected token not stored sealed under k1: ref %q, sealed %v", sealed.SecretRef, sealed.Sealed != nil)
	}
	w.runClaims(t, 150)
	if w.callsBy(long) == 0 {
		t.Fatalf("the exchanged token was not used: %v", w.Calls())
	}

	// Metasim expires it mid-run: verification sees 190, the tenant falls
	// back to the platform token, and the health Schedule agrees.
	if err := w.Sim.SetTokenState(long, metasim.TokenExpired); err != nil {
		t.Fatal(err)
	}
	platformBefore := w.callsBy(w.Tenants.PlatformToken)
	w.runClaims(t, 150)
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "the Governor holds the token broken", func() (bool, string) {
		g := systemtest.QueryGovernor(t, w.C)
		return len(g.BrokenTokens) == 1, fmt.Sprint(g.Alerts)
	})
	if w.callsBy(w.Tenants.PlatformToken) == platformBefore {
		t.Fatal("the tenant's claims did not move to the platform token")
	}
	if st := w.stored(t).Health; st.State != store.TokenInvalid || !strings.Contains(st.Reason, "seen in verification") {
		t.Fatalf("after a 190 in verification the token is %s (%s), want invalid", st.State, st.Reason)
	}
	if _, err := workflows.EnsureTokenHealthSchedule(ctx, w.C, w.Cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.C.ScheduleClient().GetHandle(ctx, tokens.HealthScheduleID).Delete(ctx) })
	if err := w.C.ScheduleClient().GetHandle(ctx, tokens.HealthScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 300*time.Millisecond, "the health check records the token invalid", func() (bool, string) {
		h := w.stored(t).Health
		return h.State == store.TokenInvalid && strings.Contains(h.Reason, "463"), fmt.Sprintf("%s: %s", h.State, h.Reason)
	})
	if n := w.callsBy("app"); n == 0 {
		t.Fatalf("the health check made no call with the app token: %v", w.Calls())
	}

	// Reconnecting with a token that expires in three days brings the
	// tenant back, with a warning to reconnect again soon.
	soon := w.mint(t, metasim.MintOptions{Kind: "user_long", ExpiresIn: 72 * time.Hour})
	if status, view, body := w.connect(t, soon.Value); status != http.StatusCreated || view.State != string(store.TokenExpiring) {
		t.Fatalf("expiring token: %d %s", status, body)
	}
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "back on its own token, warned", func() (bool, string) {
		g := systemtest.QueryGovernor(t, w.C)
		return len(g.BrokenTokens) == 0 && len(g.ExpiringTokens) == 1, fmt.Sprint(g.Alerts)
	})
	w.runClaims(t, 100)
	if w.callsBy(soon.ID) == 0 {
		t.Fatalf("the reconnected token was not used: %v", w.Calls())
	}

	// A Page token that never expires clears the warning; then the user
	// removes the app and Meta's callback revokes it.
	page := w.mint(t, metasim.MintOptions{Kind: "page"})
	if status, view, body := w.connect(t, page.Value); status != http.StatusCreated || view.State != string(store.TokenHealthy) {
		t.Fatalf("page token: %d %s", status, body)
	}
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "the warning cleared", func() (bool, string) {
		g := systemtest.QueryGovernor(t, w.C)
		return len(g.ExpiringTokens) == 0 && len(g.BrokenTokens) == 0, fmt.Sprint(g.Alerts)
	})
	if err := w.Sim.Deauthorize(page.ID); err != nil {
		t.Fatal(err)
	}
	if h := w.stored(t).Health; h.State != store.TokenRevoked {
		t.Fatalf("after the deauthorization callback the token is %s (%s), want revoked", h.State, h.Reason)
	}
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "revoked: the tenant on the platform token", func() (bool, string) {
		g := systemtest.QueryGovernor(t, w.C)
		return len(g.BrokenTokens) == 1, fmt.Sprint(g.Alerts)
	})
	w.runClaims(t, 100)

	// Reconnected once more, under k1; then the keys rotate to k2 while the
	// engine runs, and a worker holding only k2 reads every token.
	again := w.mint(t, metasim.MintOptions{Kind: "user_long"})
	if status, _, body := w.connect(t, again.Value); status != http.StatusCreated {
		t.Fatalf("reconnect: %d %s", status, body)
	}
	rotation, _ := vault.New(k2, k1)
	res, err := vault.Rotate(ctx, w.St, rotation)
	if err != nil || res.Rewrapped != 1 || len(res.Missing) != 0 {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	if key := w.stored(t).Sealed.MasterKeyID; key != "k2" {
		t.Fatalf("after the rotation the token is wrapped by %s, want k2", key)
	}
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "back on its own token", func() (bool, string) {
		g := systemtest.QueryGovernor(t, w.C)
		return len(g.BrokenTokens) == 0, fmt.Sprint(g.Alerts)
	})
	w.runClaims(t, 100)
	if w.callsBy(again.ID) == 0 {
		t.Fatalf("the reconnected token was not used: %v", w.Calls())
	}
	onlyK2, _ := vault.New(k2)
	report := runHealthWith(t, w, onlyK2)
	if len(report.Unchecked) != 0 {
		t.Fatalf("a worker holding only the new key could not check %v", report.Unchecked)
	}
	for _, st := range report.Checked {
		if st.TokenID == tokens.TokenIDFor(w.tenant) && st.State != store.TokenHealthy {
			t.Fatalf("after the rotation the tenant's token is %s: %s", st.State, st.Reason)
		}
	}
	systemtest.CheckVerdictsAgainstTruth(t, w.St, w.Sim.Truth(), w.Total)
	if dir := os.Getenv("RECORD_HISTORIES"); dir != "" {
		systemtest.RecordHistory(t, w.C, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Completed'", tokens.HealthWorkflowType), filepath.Join(dir, "tokenhealth.json"))
		systemtest.RecordHistory(t, w.C, fmt.Sprintf("WorkflowType = '%s'", governor.WorkflowType), filepath.Join(dir, "governor_tokens.json"))
	}
	t.Logf("FIGURES token lifecycle: %d claims; calls %v", w.Total, w.Calls())
}

// runHealthWith runs the TokenHealth workflow on a worker of its own (its
// own task queue) whose activities hold keys: a worker restarted with new
// keys.
func runHealthWith(t *testing.T, w *tokenWorld, keys *vault.Vault) tokens.HealthReport {
	t.Helper()
	const queue = "token-health-k2"
	eng := engine.New(engine.Deps{Store: w.St, Graph: w.eng.Tokens.Sessions.Graph, PlatformTokenID: w.Tenants.PlatformToken, Vault: keys,
		Temporal: w.C, Speed: w.Cfg.Speed})
	wk := worker.New(w.C, queue, worker.Options{})
	eng.Register(wk)
	if err := wk.Start(); err != nil {
		t.Fatal(err)
	}
	defer wk.Stop()
	run, err := w.C.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "token-health-after-rotation", TaskQueue: queue},
		tokens.HealthWorkflowType, tokens.HealthInput{})
	if err != nil {
		t.Fatal(err)
	}
	var report tokens.HealthReport
	if err := run.Get(context.Background(), &report); err != nil {
		t.Fatal(err)
	}
	return report
}

// rawTokenRowsHoldNoValue reads every column of every tokens row with plain
// SQL and looks for each token metasim ever issued, as text, base64 and hex.
func rawTokenRowsHoldNoValue(t *testing.T, dsn string, sim *metasim.Sim) {
	t.Helper()
	db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM tokens`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var dump bytes.Buffer
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			fmt.Fprintf(&dump, "%v|%s\n", v, v)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no token rows read")
	}
	for _, tk := range sim.World().Tokens {
		for _, form := range []string{tk.Value, base64.StdEncoding.EncodeToString([]byte(tk.Value)), hex.EncodeToString([]byte(tk.Value))} {
			if form != "" && bytes.Contains(dump.Bytes(), []byte(form)) {
				t.Errorf("token %s found in clear in the tokens table", tk.ID)
			}
		}
	}
}
