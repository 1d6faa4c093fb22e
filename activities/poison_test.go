package activities_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
)

// poisonTransport panics on every request whose URL contains one of
// targets (every request when targets is empty), as a decoding bug meeting
// one object's odd response would: in the caller's goroutine, inside the
// Graph client. The panic value quotes the request URL, access token
// included, as careless code would.
type poisonTransport struct {
	targets []string
	panics  atomic.Int64
}

func (p *poisonTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL.String()
	if len(p.targets) == 0 || slices.ContainsFunc(p.targets, func(t string) bool { return strings.Contains(u, t) }) {
		p.panics.Add(1)
		var fields []string
		_ = fields[len(u)%3+3] // index out of range, as the bug would
	}
	return http.DefaultTransport.RoundTrip(r)
}

// poisonURLTransport panics with the request's URL as its value.
type poisonURLTransport struct{ target string }

func (p poisonURLTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.String(), p.target) {
		panic(fmt.Sprintf("unexpected answer from %s", r.URL))
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (h *harness) useTransport(rt http.RoundTripper) {
	gc := h.graph
	gc.Transport = rt
	h.acts.Tokens.Graph = graph.New(gc)
}

// checkAgainstTruth checks every claim but the poisoned ones against
// metasim's ground truth after a first check and a final re-check, and the
// poisoned ones quarantined with a reason naming the panic and no secret.
func (h *harness) checkAgainstTruth(t *testing.T, claims []store.Claim, poisoned map[int64]bool) {
	t.Helper()
	got, err := h.st.Claims(context.Background(), ids(claims))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		genuine := h.truth[c.Tenant+"/"+c.Key]
		switch {
		case poisoned[c.ID]:
			if c.Status != store.StatusQuarantined || !strings.Contains(c.LastError, "panic") || c.QuarantinedAt.IsZero() || c.Verdict != "" {
				t.Errorf("poison claim %d (%s on %s): status %s, reason %q", c.ID, c.Kind, c.Target, c.Status, c.LastError)
			}
			for _, tok := range h.sim.World().Tokens {
				if strings.Contains(c.LastError, tok.Value) {
					t.Errorf("token %s value in the quarantine reason: %q", tok.ID, c.LastError)
				}
			}
		case c.Status != store.StatusDecided:
			t.Errorf("claim %d (%s, genuine=%v) left %s", c.ID, c.Kind, genuine, c.Status)
		case genuine != (c.Verdict == store.VerdictVerified):
			t.Errorf("claim %d (%s, genuine=%v): %s", c.ID, c.Kind, genuine, c.Verdict)
		}
	}
}

func ids(claims []store.Claim) []int64 {
	out := make([]int64, len(claims))
	for i, c := range claims {
		out[i] = c.ID
	}
	return out
}

// verifyAll runs a first check, then the final re-check of the claims it
// found no evidence for, as TenantBatch does; it returns both results.
func (h *harness) verifyAll(t *testing.T, claims []store.Claim) (first, final activities.VerifyResult) {
	t.Helper()
	first = h.verify(t, "brand-01", "platform", claims, false)
	var absent []store.Claim
	for _, c := range claims {
		if slices.Contains(first.Absent, c.ID) {
			absent = append(absent, c)
		}
	}
	final = h.verifyWithGrace(t, "brand-01", "platform", absent, true, time.Hour)
	return first, final
}

// The poison claim: a claim whose check makes the activity panic
// (here the Graph client, reading the claim's media) is quarantined with a
// reason naming the panic; the activity returns normally, every other claim
// of the chunk gets the verdict metasim's ground truth says, and nothing is
// left leased.
func TestPoisonClaimIsQuarantinedAndTheRestDecided(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 80, 0.3, comments)
	// A mention: checked with one call of its own, on its own media.
	var poison store.Claim
	for _, c := range claims {
		if c.Kind == claim.IGMention && !slices.ContainsFunc(claims, func(o store.Claim) bool { return o.ID != c.ID && strings.Contains(o.Target, c.Target) }) {
			poison = c
			break
		}
	}
	if poison.ID == 0 {
		t.Fatal("no mention claim drawn: pick another seed")
	}
	rt := &poisonTransport{targets: []string{poison.Target}}
	h.useTransport(rt)

	first, final := h.verifyAll(t, claims)
	if rt.panics.Load() == 0 {
		t.Fatal("the poison transport never panicked: the test tests nothing")
	}
	if len(first.Quarantined) != 1 || first.Quarantined[0].ClaimID != poison.ID || !strings.Contains(first.Quarantined[0].Reason, "panic: runtime error: index out of range") {
		t.Fatalf("first check quarantined %+v, want claim %d with its panic", first.Quarantined, poison.ID)
	}
	if !strings.Contains(first.Quarantined[0].Reason, "poison_test.go") {
		t.Errorf("the reason does not say where it panicked: %q", first.Quarantined[0].Reason)
	}
	if first.Verified+len(first.Absent)+len(first.Quarantined) != len(claims) || len(first.Deferred) != 0 {
		t.Fatalf("first check: %d verified + %d absent + %d quarantined of %d, %d deferred", first.Verified, len(first.Absent), len(first.Quarantined), len(claims), len(first.Deferred))
	}
	if final.Rejected != len(first.Absent) || len(final.Quarantined) != 0 {
		t.Fatalf("re-check: rejected %d of %d, quarantined %d", final.Rejected, len(first.Absent), len(final.Quarantined))
	}
	h.checkAgainstTruth(t, claims, map[int64]bool{poison.ID: true})
	stats, err := h.st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Leased != 0 || s.Pending != 0 {
			t.Errorf("%s: %d leased, %d pending left", s.Tenant, s.Leased, s.Pending)
		}
		if want := map[string]int{"brand-01": 1}[s.Tenant]; s.Quarantined != want {
			t.Errorf("%s: %d quarantined, want %d", s.Tenant, s.Quarantined, want)
		}
	}

	// A quarantined claim is not checked again: no call, no panic.
	before := rt.panics.Load()
	again := h.verify(t, "brand-01", "platform", []store.Claim{poison}, true)
	if again.Calls != 0 || len(again.Quarantined) != 0 || rt.panics.Load() != before {
		t.Fatalf("a quarantined claim was checked again: %+v", again)
	}
}

// A target whose read panics poisons the claims on it, and only those: the
// other targets of the chunk are read and decided as usual.
func TestPoisonTargetQuarantinesItsClaimsOnly(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 80, 0.3, comments)
	perTarget := map[string]int{}
	for _, c := range claims {
		if c.Kind == claim.IGComment {
			perTarget[c.Target]++
		}
	}
	var target string
	for tg, n := range perTarget {
		if n >= 2 && (target == "" || tg < target) {
			target = tg
		}
	}
	if target == "" {
		t.Fatal("no media with two comment claims: pick another seed")
	}
	poisoned := map[int64]bool{}
	for _, c := range claims {
		if c.Target == target {
			poisoned[c.ID] = true
		}
	}
	// The panic quotes the request URL, access token and all.
	h.useTransport(poisonURLTransport{target: "/" + target + "/"})

	first, _ := h.verifyAll(t, claims)
	var got []int64
	for _, p := range first.Quarantined {
		got = append(got, p.ClaimID)
		if !strings.Contains(p.Reason, "unexpected answer from") || !strings.Contains(p.Reason, "access_token=[redacted]") {
			t.Errorf("reason %q: want the panic, its access token redacted", p.Reason)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(func(yield func(int64) bool) {
		for id := range poisoned {
			if !yield(id) {
				return
			}
		}
	})
	if !slices.Equal(got, want) {
		t.Fatalf("quarantined %v, want the claims on %s: %v", got, target, want)
	}
	h.checkAgainstTruth(t, claims, poisoned)
}

// A panic in every check, in several places, is the worker's fault, not
// the claims': the activity fails as it did without the guard (Temporal
// retries it; the workflow hands the chunk back), and nothing is
// quarantined.
func TestPanicInEveryCheckFailsTheActivity(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 30, 0.3, comments)
	h.useTransport(&poisonTransport{})
	_, err := h.env.ExecuteActivity(h.acts.VerifyClaims, activities.VerifyInput{
		TenantID: "brand-01", TokenID: "platform", ClaimIDs: ids(claims), LeaseOwner: owner,
	})
	if err == nil || !strings.Contains(err.Error(), "fault of the worker") {
		t.Fatalf("VerifyClaims = %v, want the activity failed", err)
	}
	stats, err := h.st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Quarantined != 0 || stats[0].Leased != len(claims) {
		t.Fatalf("stats %+v: want every claim still leased, none quarantined", stats)
	}
}

// An audit holds no lease on the decided claims it checks: a poison claim
// there comes back deferred as permanent (the audit skips it a while),
// keeping its verdict.
func TestPoisonClaimInAnAuditIsSetAside(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 40, 0, map[string]float64{"ig_mention": 1, "ig_comment": 1})
	var decisions []store.Decision
	for _, c := range claims {
		decisions = append(decisions, store.Decision{ClaimID: c.ID, Verdict: store.VerdictApprovedOnHonor, Method: activities.MethodHonor, Evidence: "{}"})
	}
	if _, err := h.st.Decide(context.Background(), decisions, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var poison store.Claim
	for _, c := range claims {
		if c.Kind == claim.IGMention {
			poison = c
			break
		}
	}
	if poison.ID == 0 {
		t.Fatal("no mention claim drawn")
	}
	h.useTransport(&poisonTransport{targets: []string{poison.Target}})
	v, err := h.env.ExecuteActivity(h.acts.VerifyClaims, activities.VerifyInput{
		TenantID: "brand-01", TokenID: "platform", ClaimIDs: ids(claims), Audit: true, Final: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.VerifyResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Deferred) != 1 || res.Deferred[0].ClaimID != poison.ID || res.Deferred[0].Class != graph.Permanent ||
		!strings.Contains(res.Deferred[0].Reason, "poison claim: panic") || len(res.Quarantined) != 0 {
		t.Fatalf("audit result %+v, want the poison claim deferred as permanent", res)
	}
	if res.Confirmed+res.Revoked != len(claims)-1 {
		t.Errorf("confirmed %d and revoked %d of the %d other approvals", res.Confirmed, res.Revoked, len(claims)-1)
	}
	got, err := h.st.Claims(context.Background(), []int64{poison.ID})
	if err != nil || got[0].Status != store.StatusDecided || got[0].Verdict != store.VerdictApprovedOnHonor {
		t.Fatalf("poison claim after the audit: %+v, %v", got, err)
	}
}
