package chaos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// The shortened chaos suite `make test` runs: 1,000 claims over 30 s on the
// real dev server (a process, restarted once on its database file), the
// worker binary (SIGKILLed once and restarted), metasim answering 10% of
// Graph calls with a 5xx and sending 30% of webhooks twice, every claim
// submitted twice (store and platform API), and on PostgreSQL (when
// TEST_DATABASE_URL is set; SQLite otherwise, so it never skips) the
// worker's connections terminated once. Every claim must be decided exactly
// once, in agreement with ground truth or as a labelled provisional
// approval, none left leased, and no secret in any history or log.
func TestShortChaos(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := DefaultOptions()
	o.TemporalCLI = testenv.TemporalCLI(t)
	o.DatabaseURL = os.Getenv("TEST_DATABASE_URL")
	o.Dir = t.TempDir()
	o.DrainTimeout = 2 * time.Minute
	o.Log = t.Logf
	var err error
	if o.WorkerBinary, err = BuildWorker(ctx, testenv.RepoRoot(t), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	res, err := RunScenario(ctx, o, ShortScenario(1000, 30*time.Second, o.DatabaseURL != ""))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = PrintTable(&b, Report{Scenarios: []Result{res}})
	t.Log("\n" + b.String())

	for _, p := range res.Problems {
		t.Error(p)
	}
	if res.Claims != 1000 || res.Decided != 1000 {
		t.Errorf("%d claims decided of %d submitted, want 1000 of 1000", res.Decided, res.Claims)
	}
	if res.Submissions != 2*res.Claims || res.DuplicatesRefused < res.Claims/2 {
		t.Errorf("%d submissions, %d refused as duplicates: every claim should go twice, the second mostly refused", res.Submissions, res.DuplicatesRefused)
	}
	wantFaults := 3
	if o.DatabaseURL != "" {
		wantFaults = 4
	}
	if len(res.Faults) != wantFaults {
		t.Errorf("%d faults recorded, want %d: %+v", len(res.Faults), wantFaults, res.Faults)
	}
	for _, f := range res.Faults {
		if f.RecoveryS < 0 {
			t.Errorf("%s: never recovered", f.Name)
		}
	}
	if res.GraphByOutcome["fault"] == 0 {
		t.Errorf("no 5xx answered: %v", res.GraphByOutcome)
	}
	if res.Webhooks.Duplicates == 0 {
		t.Errorf("no webhook delivered twice: %+v", res.Webhooks)
	}
	// The scan proves something only if it read histories and logs.
	if res.Workflows < 10 || res.LogFiles < 3 || res.SecretsChecked < 5 {
		t.Errorf("secrets scan: %d histories, %d log files, %d secrets", res.Workflows, res.LogFiles, res.SecretsChecked)
	}
}

// The scanner finds a secret as text, inside a base64 payload (as `temporal
// workflow show --output json` prints payloads), inside base64 inside a
// payload's JSON, and in a JSON log line; and nothing where there is none.
func TestScannerFindsSecretsWhereverTheyAre(t *testing.T) {
	const token = "EAAGm0PX4ZCpsBAKZCZBtoken1234567890"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	history := func(data string) []byte {
		doc := map[string]any{"events": []any{map[string]any{"eventId": "1", "workflowExecutionStartedEventAttributes": map[string]any{
			"input": map[string]any{"payloads": []any{map[string]any{"metadata": map[string]any{"encoding": b64("json/plain")}, "data": data}}}}}}}
		out, _ := json.Marshal(doc)
		return out
	}
	cases := []struct {
		name string
		scan func(*scanner)
		want bool
	}{
		{"payload in clear", func(s *scanner) { s.scanJSON("h", history(b64(`{"TokenID":"platform","Value":"`+token+`"}`))) }, true},
		{"base64 inside a payload", func(s *scanner) { s.scanJSON("h", history(b64(`{"Blob":"`+b64("x "+token+" y")+`"}`))) }, true},
		{"token as text", func(s *scanner) { s.scanJSON("h", []byte(`{"memo":"Bearer `+token+`"}`)) }, true},
		{"log line", func(s *scanner) {
			s.scanLog("worker.log", []byte(`{"level":"error","msg":"GET /me?access_token=`+token+`"}`+"\n"))
		}, true},
		{"log field in base64", func(s *scanner) {
			s.scanLog("worker.log", []byte(`{"level":"info","body":"`+b64(token)+`"}`+"\n"))
		}, true},
		{"clean history", func(s *scanner) { s.scanJSON("h", history(b64(`{"TokenID":"platform"}`))) }, false},
		{"clean log", func(s *scanner) { s.scanLog("worker.log", []byte(`{"level":"info","msg":"token [redacted]"}`+"\n")) }, false},
	}
	for _, c := range cases {
		s := newScanner(map[string]string{"token platform": token})
		c.scan(s)
		if got := len(s.found()) > 0; got != c.want {
			t.Errorf("%s: found %v, want %v", c.name, s.found(), c.want)
		}
	}
}

func TestRandomPointsAreSortedApartAndInRange(t *testing.T) {
	r := &Run{rng: rand.New(rand.NewPCG(3, 4))}
	for range 100 {
		pts := randomPoints(r, 5, 10*time.Second, 100*time.Second, 10*time.Second)
		for i, p := range pts {
			if p < 10*time.Second || p >= 100*time.Second {
				t.Fatalf("point %v out of [10s, 100s): %v", p, pts)
			}
			if i > 0 && p-pts[i-1] < 10*time.Second {
				t.Fatalf("points closer than 10s: %v", pts)
			}
		}
	}
}

// fakeStore answers the three reads check makes.
type fakeStore struct {
	store.Store
	stats   []store.Stats
	decided []store.Claim
	counts  []store.VerdictCount
}

func (f fakeStore) Stats(context.Context) ([]store.Stats, error) { return f.stats, nil }
func (f fakeStore) Decided(context.Context, store.ExportFilter) ([]store.Claim, error) {
	return f.decided, nil
}
func (f fakeStore) VerdictCounts(context.Context) ([]store.VerdictCount, error) { return f.counts, nil }

// check counts every way a run can go wrong, each once: a claim never
// decided, one left leased, a genuine claim rejected, a false one verified,
// an unverifiable kind verified, a claim stored twice, a decision counted
// twice, a key accepted twice; and it passes what is right (a false claim
// revoked, an unverifiable one by rule, an approval on honor).
func TestCheckCountsEveryFailure(t *testing.T) {
	dc := func(id int64, key string, kind claim.Kind, verdict string) store.Claim {
		c := store.Claim{ID: id, Status: store.StatusDecided, Verdict: verdict, Method: "graph", DecidedAt: time.Now()}
		c.Tenant, c.Key, c.Kind = "brand-01", key, kind
		if verdict == store.VerdictRevoked {
			c.RevokedAt = time.Now()
		}
		return c
	}
	decided := []store.Claim{
		dc(1, "ok", claim.IGComment, store.VerdictVerified),
		dc(2, "genuine-rejected", claim.IGComment, store.VerdictRejected),
		dc(3, "fraud-verified", claim.IGComment, store.VerdictVerified),
		dc(4, "fraud-revoked", claim.FBComment, store.VerdictRevoked),
		dc(5, "follow", claim.IGFollow, store.VerdictUnverifiable),
		dc(6, "follow-verified", claim.IGFollow, store.VerdictVerified),
		dc(7, "honor", claim.IGTag, store.VerdictApprovedOnHonor),
		dc(8, "twice", claim.IGComment, store.VerdictVerified),
		dc(9, "twice", claim.IGComment, store.VerdictVerified),
	}
	wl := &workload{truth: map[string]bool{}, kinds: map[string]claim.Kind{}, accepted: map[string]int{}}
	for key, v := range map[string]struct {
		genuine bool
		kind    claim.Kind
	}{
		"ok": {true, claim.IGComment}, "genuine-rejected": {true, claim.IGComment}, "fraud-verified": {false, claim.IGComment},
		"fraud-revoked": {false, claim.FBComment}, "follow": {true, claim.IGFollow}, "follow-verified": {true, claim.IGFollow},
		"honor": {false, claim.IGTag}, "twice": {true, claim.IGComment}, "never": {true, claim.IGComment},
	} {
		wl.truth["brand-01/"+key], wl.kinds["brand-01/"+key] = v.genuine, v.kind
		wl.accepted["brand-01/"+key] = 1
	}
	wl.accepted["brand-01/ok"] = 2
	st := fakeStore{decided: decided,
		stats: []store.Stats{{Tenant: "brand-01", Leased: 1}},
		counts: []store.VerdictCount{
			{Tenant: "brand-01", Kind: "ig_comment", Method: "graph", Verdict: "verified", N: 10}, // 9 rows, one counted twice
			{Tenant: "brand-01", Kind: "fb_comment", Method: "audit", Verdict: "revoked", N: 1},
		}}
	var res Result
	if _, err := check(context.Background(), &system{st: st}, wl, &res); err != nil {
		t.Fatal(err)
	}
	res.finish()
	want := Result{Lost: 1, LeftLeased: 1, WronglyRejected: 1, Mismatched: 2, Doubled: 3, Provisional: 1, Revoked: 1}
	if res.Lost != want.Lost || res.LeftLeased != want.LeftLeased || res.WronglyRejected != want.WronglyRejected ||
		res.Mismatched != want.Mismatched || res.Doubled != want.Doubled || res.Provisional != want.Provisional || res.Revoked != want.Revoked || res.OK {
		t.Errorf("lost %d, left leased %d, wrongly rejected %d, mismatched %d, doubled %d, provisional %d, revoked %d, ok %v; want %+v",
			res.Lost, res.LeftLeased, res.WronglyRejected, res.Mismatched, res.Doubled, res.Provisional, res.Revoked, res.OK, want)
	}
	t.Log(strings.Join(res.Problems, "\n"))
}
