// Package systemtest starts the whole engine on real parts for tests: the
// Temporal dev server, metasim over HTTP through huandu/facebook, a task
// store, and a worker with every workflow and activity (internal/engine).
// Its own tests are the system's (the platform API, the Web UI in a
// browser, the codec server, tenants' tokens); the workflows' integration
// tests use the same helpers.
package systemtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// StartWorker runs a worker with every workflow and the engine built from d
// (its Temporal client set to c) on c, with the search attributes created,
// as `starter setup` and the worker main do. It returns the engine.
func StartWorker(t testing.TB, c client.Client, d engine.Deps) *engine.Engine {
	t.Helper()
	d.Temporal = c
	eng := engine.New(d)
	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	eng.Register(w)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	if _, err := workflows.EnsureSearchAttributes(context.Background(), c, "default"); err != nil {
		t.Fatal(err)
	}
	return eng
}

// StartEngine runs the engine on c as the worker main and `starter setup`
// do: a worker reading metasim's Graph API at graphURL (through transport
// when not nil) at cfg's speed, and the Dispatcher's Schedule, deleted when
// the test ends. tune, when given, adjusts the dependencies before the
// worker starts.
func StartEngine(t testing.TB, c client.Client, cfg config.Config, st store.Store, sim *metasim.Sim,
	graphURL, appSecret, platformToken string, transport http.RoundTripper, tune ...func(*engine.Deps)) *engine.Engine {
	t.Helper()
	ctx := context.Background()
	d := engine.Deps{
		Store: st,
		Graph: graph.New(graph.Config{BaseURL: graphURL + "/", Version: "v21.0", AppID: sim.World().AppID,
			AppSecret: secret.New(appSecret), Transport: transport}),
		PlatformTokenID: platformToken,
		Speed:           cfg.Speed,
		UserRiskTTL:     cfg.Scaled(cfg.UserRiskTTL),
	}
	for _, f := range tune {
		f(&d)
	}
	eng := StartWorker(t, c, d)
	if _, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Delete(ctx) })
	return eng
}

// World runs the whole engine (Schedule, Dispatcher, Governor, TenantBatch,
// limiters, audit) on the real dev server against metasim over HTTP, an
// hour a minute.
type World struct {
	Sim     *metasim.Sim
	C       client.Client
	Addr    string // the dev server, for the `temporal` CLI
	St      store.Store
	Cfg     config.Config
	Tenants config.Tenants
	Eng     *engine.Engine
	Total   int // claims submitted
}

// Speed is a World's: an hour a minute.
const Speed = 60

// StartWorld starts the engine against a metasim world of sc: seed 7, the
// platform token at 20,000 calls an hour and tenants' own at 5,000 unless
// sc says otherwise.
func StartWorld(t testing.TB, sc metasim.Config, tune func(*config.Config)) *World {
	t.Helper()
	const appSecret = "hybrid-test-secret"
	sc.Speed, sc.AppSecret = Speed, appSecret
	if sc.Seed == 0 {
		sc.Seed = 7
	}
	if sc.PlatformBudget.Calls == 0 {
		sc.PlatformBudget = metasim.Budget{Calls: 20_000, Window: time.Hour}
	}
	if sc.TenantBudget.Calls == 0 {
		sc.TenantBudget = metasim.Budget{Calls: 5_000, Window: time.Hour}
	}
	sim := metasim.New(sc)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)

	cfg := config.Default()
	cfg.Speed = Speed
	cfg.BatchSize = 5000
	if tune != nil {
		tune(&cfg)
	}
	c, addr := testenv.DevServerAt(t)
	eng := StartEngine(t, c, cfg, st, sim, srv.URL, appSecret, tenants.PlatformToken, nil)
	return &World{Sim: sim, C: c, Addr: addr, St: st, Cfg: cfg, Tenants: tenants, Eng: eng}
}

// TenantsBy lists tenant ids of a tier, in id order.
func (w *World) TenantsBy(tier store.Tier) []string {
	var ids []string
	for _, tn := range w.Tenants.Tenants {
		if tn.Tier == tier {
			ids = append(ids, tn.ID)
		}
	}
	return ids
}

// Generate makes n claims of the tenants (all when none), fraud of them false.
func (w *World) Generate(t testing.TB, n int, fraud float64, tenants ...string) []claim.Claim {
	t.Helper()
	return w.GenerateWith(t, n, metasim.ClaimOptions{FraudRate: fraud, Tenants: tenants})
}

// GenerateWith makes n claims as metasim's options say.
func (w *World) GenerateWith(t testing.TB, n int, o metasim.ClaimOptions) []claim.Claim {
	t.Helper()
	var out []claim.Claim
	for _, g := range w.Sim.GenerateClaims(n, o) {
		c, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// Submit stores claims, counting those accepted in Total.
func (w *World) Submit(t testing.TB, claims []claim.Claim) {
	t.Helper()
	w.Total += SubmitAll(t, w.St, claims).Accepted
}

// WaitDecided waits until every submitted claim has a verdict.
func (w *World) WaitDecided(t testing.TB, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 500*time.Millisecond, "every claim decided", func() (bool, string) {
		open, decided := CountClaims(t, w.St)
		return open == 0 && decided == w.Total, fmt.Sprintf("open=%d decided=%d/%d", open, decided, w.Total)
	})
}

// StartAudit starts the Governor and the audit, as `starter setup` does.
func (w *World) StartAudit(t testing.TB) {
	t.Helper()
	if _, err := workflows.EnsureRunning(context.Background(), w.C, w.Cfg); err != nil {
		t.Fatal(err)
	}
}

// WaitAudited waits until no provisional approval is left unaudited.
func (w *World) WaitAudited(t testing.TB, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 500*time.Millisecond, "every provisional approval audited", func() (bool, string) {
		left, err := w.St.AuditQueue(context.Background(), 10_000, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(left) == 0, fmt.Sprintf("%d left to audit", len(left))
	})
}

// Calls counts metasim's requests by token.
func (w *World) Calls() map[string]int {
	by := map[string]int{}
	for _, r := range w.Sim.Requests() {
		by[r.TokenID]++
	}
	return by
}

// TemporalCLI runs the real `temporal` binary against the world's server.
func (w *World) TemporalCLI(t testing.TB, args ...string) string {
	t.Helper()
	args = append(args, "--address", w.Addr, "--namespace", "default")
	out, err := exec.Command(testenv.TemporalCLI(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Record writes histories for the replay tests when RECORD_HISTORIES is
// set (RECORD_HISTORIES=$PWD/workflows/testdata go test -run TestName ./...):
// for each file, the longest history a visibility query finds.
func (w *World) Record(t testing.TB, files map[string]string) {
	dir := os.Getenv("RECORD_HISTORIES")
	if dir == "" {
		return
	}
	for file, query := range files {
		RecordHistory(t, w.C, query, filepath.Join(dir, file))
	}
}

// SubmitCounts is what SubmitAll stored.
type SubmitCounts struct{ Accepted, Duplicates int }

// SubmitAll stores claims a thousand at a time.
func SubmitAll(t testing.TB, st store.Store, claims []claim.Claim) SubmitCounts {
	t.Helper()
	var n SubmitCounts
	for start := 0; start < len(claims); start += 1000 {
		res, err := st.Submit(context.Background(), claims[start:min(start+1000, len(claims))], time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Duplicate {
				n.Duplicates++
			} else {
				n.Accepted++
			}
		}
	}
	return n
}

// CountClaims counts the store's open (pending or leased) and decided claims.
func CountClaims(t testing.TB, st store.Store) (open, decided int) {
	t.Helper()
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		open += s.Pending + s.Leased
		for _, n := range s.Decided {
			decided += n
		}
	}
	return open, decided
}

// CheckVerdictsAgainstTruth checks that want claims are decided, each as
// metasim's ground truth says: verified when genuine (with the matching
// action in its evidence), rejected when false, unverifiable for kinds no
// API can prove; and that the workload produced every one of the three.
func CheckVerdictsAgainstTruth(t testing.TB, st store.Store, truth map[string]bool, want int) {
	t.Helper()
	decided, err := st.Decided(context.Background(), store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(decided) != want {
		t.Fatalf("%d decided claims, want %d", len(decided), want)
	}
	byVerdict := map[string]int{}
	var wrong []string
	for _, c := range decided {
		byVerdict[c.Verdict]++
		genuine, known := truth[c.Tenant+"/"+c.Key]
		var expect string
		switch {
		case !known:
			t.Fatalf("claim %s/%s has no ground truth", c.Tenant, c.Key)
		case !c.Kind.Verifiable():
			expect = store.VerdictUnverifiable
		case genuine:
			expect = store.VerdictVerified
		default:
			expect = store.VerdictRejected
		}
		if c.Verdict != expect {
			wrong = append(wrong, fmt.Sprintf("%s/%s %s genuine=%v: %s (%s), want %s", c.Tenant, c.Key, c.Kind, genuine, c.Verdict, c.Evidence, expect))
		}
		if c.Verdict == store.VerdictVerified && !strings.Contains(c.Evidence, `"match"`) {
			t.Errorf("verified claim %s/%s has no matching action in its evidence: %s", c.Tenant, c.Key, c.Evidence)
		}
	}
	t.Logf("verdicts: %v", byVerdict)
	if len(wrong) > 0 {
		t.Fatalf("%d verdicts disagree with ground truth, e.g.:\n%s", len(wrong), strings.Join(wrong[:min(10, len(wrong))], "\n"))
	}
	for _, v := range []string{store.VerdictVerified, store.VerdictRejected, store.VerdictUnverifiable} {
		if byVerdict[v] == 0 {
			t.Errorf("no %s verdicts: the workload should produce every kind", v)
		}
	}
}

// QueryGovernor is the Governor's state, through the SDK.
func QueryGovernor(t testing.TB, c client.Client) governor.View {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), governor.WorkflowID, "", governor.QueryState)
	if err != nil {
		t.Fatal(err)
	}
	var st governor.View
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// RecordHistory writes the longest history among the runs a visibility
// query finds, as `temporal workflow show --output json` would.
func RecordHistory(t testing.TB, c client.Client, query, path string) {
	t.Helper()
	ctx := context.Background()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
	if err != nil || len(resp.Executions) == 0 {
		t.Fatalf("no run to record for %s: %v", query, err)
	}
	best := resp.Executions[0]
	for _, e := range resp.Executions {
		if e.HistoryLength > best.HistoryLength {
			best = e
		}
	}
	iter := c.GetWorkflowHistory(ctx, best.Execution.WorkflowId, best.Execution.RunId, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []json.RawMessage
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, b)
	}
	out, _ := json.MarshalIndent(map[string]any{"events": events}, "", "  ")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s (%d events) to %s", best.Execution.WorkflowId, len(events), path)
}
