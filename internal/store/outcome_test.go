package store_test

// RecordOutcome: a chunk's whole outcome, written in one transaction.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

// outcomeWorld holds the claims of the RecordOutcome tests, by key, as
// newOutcomeWorld leaves them:
//
//	acme  v1, r1, r1b (r1's user), q1, a3: leased by batch-1
//	      q2: leased by batch-2
//	      r2: rejected before; a1: approved by sample; a2: approved on honor
//	beta  b1: leased by batch-1
//
// a2's user is flagged already, for longer than the outcome flags.
type outcomeWorld struct {
	ids   map[string]int64
	all   []int64
	users map[string]string // of each key
}

// outcome clock: the world is set up before now, the outcome recorded at
// now, its flags last until riskUntil; a2's user stays flagged until
// flaggedUntil.
var (
	outcomeNow   = t0.Add(time.Hour)
	riskUntil    = outcomeNow.Add(24 * time.Hour)
	flaggedUntil = outcomeNow.Add(48 * time.Hour)
)

func newOutcomeWorld(t *testing.T, s store.Store) outcomeWorld {
	t.Helper()
	ctx := context.Background()
	w := outcomeWorld{ids: map[string]int64{}, users: map[string]string{}}
	add := func(at time.Time, tenant, key, user string) {
		c := claim.Claim{Tenant: tenant, Key: key, User: user, Handle: "h_" + key, Kind: claim.IGComment, Target: "17890000000000001"}
		w.ids[key] = submit(t, s, at, c)[0]
		w.all = append(w.all, w.ids[key])
		w.users[key] = user
	}
	add(t0, "acme", "q2", "quinn")
	if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-2", Limit: 1, TTL: 24 * time.Hour, Now: t0}); err != nil || len(got) != 1 {
		t.Fatalf("Claim(batch-2): %d, %v", len(got), err)
	}
	sec := t0.Add(time.Second)
	add(sec, "acme", "v1", "vera")
	add(sec, "acme", "r1", "liar")
	add(sec, "acme", "r1b", "liar")
	add(sec, "acme", "r2", "old-liar")
	add(sec, "acme", "q1", "quentin")
	add(sec, "acme", "a1", "sam")
	add(sec, "acme", "a2", "honor-liar")
	add(sec, "acme", "a3", "pat")
	add(sec, "beta", "b1", "beta-liar")
	if _, err := s.Decide(ctx, []store.Decision{
		{ClaimID: w.ids["r2"], Verdict: store.VerdictRejected, Method: "graph", Evidence: "before"},
		{ClaimID: w.ids["a1"], Verdict: store.VerdictApprovedBySample, Method: "sample"},
		{ClaimID: w.ids["a2"], Verdict: store.VerdictApprovedOnHonor, Method: "honor"},
	}, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-1", Limit: 100, TTL: 24 * time.Hour, Now: t0.Add(3 * time.Second)}); err != nil || len(got) != 6 {
		t.Fatalf("Claim(batch-1): %d, %v; want 6", len(got), err)
	}
	if err := s.FlagUsers(ctx, []store.UserFlag{{Tenant: "acme", User: "honor-liar", Until: flaggedUntil, Reason: "earlier"}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// mixedOutcome has a part of every kind, some of which take no effect.
func (w outcomeWorld) mixedOutcome() store.Outcome {
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	return store.Outcome{
		Now: outcomeNow,
		Evidence: []store.EvidenceAction{
			{Target: "2001", Edge: "comments", ActionID: "c1", Username: "li\x00ar", UserID: "9", Text: "CODE\x00 1",
				Time: h(-1), Source: store.SourceGraph, SeenAt: outcomeNow},
			{Target: "2002", Edge: "comments", ActionID: "c9", Username: "vera", Text: "hello", Time: h(-2),
				Source: store.SourceWebhook, SeenAt: outcomeNow},
		},
		Coverages: []store.Coverage{
			{Target: "2001", Edge: "comments", From: h(-3), To: h(-2), ReadAt: rd(1)},
			{Target: "2001", Edge: "tags", To: h(-1), ReadAt: rd(1)},
			{Target: "2001", Edge: "comments", From: h(-2), To: h(0), ReadAt: rd(2)}, // merges with the first
		},
		Decisions: []store.Decision{
			{ClaimID: w.ids["v1"], Verdict: store.VerdictVerified, Method: "graph", Evidence: "v1 found"},
			{ClaimID: w.ids["r1"], Verdict: store.VerdictRejected, Method: "graph", Evidence: "r1 missing"},
			{ClaimID: w.ids["r2"], Verdict: store.VerdictRejected, Method: "graph", Evidence: "again"}, // decided before
			{ClaimID: w.ids["b1"], Verdict: store.VerdictRejected, Method: "rule", Evidence: "b1 missing"},
			{ClaimID: w.ids["r1b"], Verdict: store.VerdictRejected, Method: "graph", Evidence: "r1b missing"},
			{ClaimID: 999999, Verdict: store.VerdictRejected, Method: "graph"}, // unknown
		},
		QuarantineOwner: "batch-1",
		Quarantine: []store.Quarantine{
			{ClaimID: w.ids["q1"], Reason: "panic: boom"},
			{ClaimID: w.ids["q2"], Reason: "panic: not mine"}, // batch-2's
		},
		Confirmed: []int64{w.ids["a1"], w.ids["v1"]}, // v1 is not provisional
		Revoked: []store.Revocation{
			{ClaimID: w.ids["a2"], Evidence: "a2 gone"},
			{ClaimID: w.ids["a3"], Evidence: "a3 open"}, // not decided
			{ClaimID: 999998, Evidence: "unknown"},
		},
		RiskUntil: riskUntil,
	}
}

// dumpTables renders every row RecordOutcome may write, read straight from
// the database, to compare the store before and after a failed call.
func dumpTables(t *testing.T, b backend, dsn string) string {
	t.Helper()
	raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var out strings.Builder
	for _, q := range []string{
		`SELECT * FROM claims ORDER BY id`,
		`SELECT * FROM evidence ORDER BY target, edge, action_id`,
		`SELECT * FROM evidence_coverage ORDER BY target, edge`,
		`SELECT * FROM webhook_targets ORDER BY target`,
		`SELECT * FROM verdict_counts ORDER BY tenant_id, kind, method, verdict`,
		`SELECT * FROM user_risk ORDER BY tenant_id, user_ref`,
		`SELECT * FROM feed_counter`,
	} {
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s\n", q)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					vals[i] = string(bs)
				}
			}
			fmt.Fprintf(&out, "  %v\n", vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out.String()
}

func TestRecordOutcome(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		w := newOutcomeWorld(t, s)
		countsBefore, err := s.VerdictCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		feedBefore, err := s.Feed(ctx, "acme", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		lastSeq := feedBefore[len(feedBefore)-1].FeedSeq

		res, err := s.RecordOutcome(ctx, w.mixedOutcome())
		if err != nil {
			t.Fatalf("RecordOutcome: %v", err)
		}
		id := w.ids
		want := store.OutcomeResult{
			Decided:     []int64{id["v1"], id["r1"], id["b1"], id["r1b"]},
			Quarantined: 1,
			Confirmed:   1,
			Revoked:     []int64{id["a2"]},
			Flagged:     3, // liar (twice), beta-liar, honor-liar
		}
		if fmt.Sprint(res) != fmt.Sprint(want) {
			t.Errorf("RecordOutcome = %+v, want %+v", res, want)
		}

		// The evidence, NULs replaced, and the coverage, merged in order.
		actions, coverages, err := s.Evidence(ctx, []string{"2001", "2002"})
		if err != nil {
			t.Fatal(err)
		}
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		wantActions := []store.EvidenceAction{
			{Target: "2001", Edge: "comments", ActionID: "c1", Username: "li\uFFFDar", UserID: "9", Text: "CODE\uFFFD 1",
				Time: h(-1), Source: store.SourceGraph, SeenAt: outcomeNow},
			{Target: "2002", Edge: "comments", ActionID: "c9", Username: "vera", Text: "hello", Time: h(-2),
				Source: store.SourceWebhook, SeenAt: outcomeNow},
		}
		if got, w := evidenceStrings(actions), evidenceStrings(wantActions); !slices.Equal(got, w) {
			t.Errorf("actions:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		wantCoverages := []store.Coverage{
			{Target: "2001", Edge: "comments", From: h(-3), To: h(0), ReadAt: rd(2)},
			{Target: "2001", Edge: "tags", To: h(-1), ReadAt: rd(1)},
		}
		if got, w := coverageStrings(coverages), coverageStrings(wantCoverages); !slices.Equal(got, w) {
			t.Errorf("coverage:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		// The webhook action feeds its target, as SaveEvidence records it.
		submit(t, s, outcomeNow, onTarget("gamma", "g1", "2002"))
		loads := openLoad(t, s, outcomeNow, outcomeNow)
		if i := slices.IndexFunc(loads, func(l store.TenantLoad) bool { return l.Tenant == "gamma" }); i < 0 || loads[i].ReadyFed != 1 {
			t.Errorf("OpenLoad = %v, want gamma's claim on a fed target", loadStrings(loads))
		}

		// The claims.
		claims := map[string]store.Claim{}
		for key, cid := range id {
			claims[key] = getClaim(t, s, cid)
		}
		for _, tt := range []struct {
			key, status, verdict, evidence string
			decidedAt                      time.Time
		}{
			{"v1", store.StatusDecided, store.VerdictVerified, "v1 found", outcomeNow},
			{"r1", store.StatusDecided, store.VerdictRejected, "r1 missing", outcomeNow},
			{"r1b", store.StatusDecided, store.VerdictRejected, "r1b missing", outcomeNow},
			{"b1", store.StatusDecided, store.VerdictRejected, "b1 missing", outcomeNow},
			{"r2", store.StatusDecided, store.VerdictRejected, "before", t0.Add(2 * time.Second)}, // untouched
			{"q1", store.StatusQuarantined, "", "", time.Time{}},
			{"q2", store.StatusLeased, "", "", time.Time{}},
			{"a3", store.StatusLeased, "", "", time.Time{}},
		} {
			c := claims[tt.key]
			if c.Status != tt.status || c.Verdict != tt.verdict || c.Evidence != tt.evidence || !c.DecidedAt.Equal(tt.decidedAt) {
				t.Errorf("claim %s: status %q verdict %q evidence %q decided %v; want %q %q %q %v",
					tt.key, c.Status, c.Verdict, c.Evidence, c.DecidedAt, tt.status, tt.verdict, tt.evidence, tt.decidedAt)
			}
		}
		if c := claims["q1"]; c.LastError != "panic: boom" || !c.QuarantinedAt.Equal(outcomeNow) || c.LeaseOwner != "" {
			t.Errorf("quarantined claim: reason %q at %v owner %q", c.LastError, c.QuarantinedAt, c.LeaseOwner)
		}
		if c := claims["q2"]; c.LeaseOwner != "batch-2" || c.LastError != "" {
			t.Errorf("batch-2's claim: owner %q reason %q; want it left alone", c.LeaseOwner, c.LastError)
		}
		if c := claims["a1"]; c.Verdict != store.VerdictApprovedBySample || !c.AuditedAt.Equal(outcomeNow) {
			t.Errorf("confirmed claim: verdict %q audited %v", c.Verdict, c.AuditedAt)
		}
		if c := claims["v1"]; !c.AuditedAt.IsZero() {
			t.Errorf("verified claim audited at %v: it is not provisional", c.AuditedAt)
		}
		if c := claims["a2"]; c.Verdict != store.VerdictRevoked || c.RevokedFrom != store.VerdictApprovedOnHonor ||
			c.RevokedEvidence != "a2 gone" || !c.RevokedAt.Equal(outcomeNow) || !c.AuditedAt.Equal(outcomeNow) {
			t.Errorf("revoked claim: %+v", c)
		}

		// The feed: the decisions in their order, then the revocation.
		feed, err := s.Feed(ctx, "acme", lastSeq, 100)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := claimIDs(feed), []int64{id["v1"], id["r1"], id["r1b"], id["a2"]}; !slices.Equal(got, want) {
			t.Errorf("acme's feed after the outcome = %v, want %v", got, want)
		}
		if feed[0].FeedSeq != lastSeq+1 {
			t.Errorf("first feed number %d, want %d (the next)", feed[0].FeedSeq, lastSeq+1)
		}
		if beta, err := s.Feed(ctx, "beta", 0, 100); err != nil || !slices.Equal(claimIDs(beta), []int64{id["b1"]}) {
			t.Errorf("beta's feed = %v, %v; want [%d]", claimIDs(beta), err, id["b1"])
		}

		// The counters: what Decide and Revoke would have added.
		wantCounts := map[string]int64{}
		for _, c := range countsBefore {
			wantCounts[fmt.Sprintf("%s/%s/%s/%s", c.Tenant, c.Kind, c.Method, c.Verdict)] = c.N
		}
		wantCounts["acme/ig_comment/graph/verified"]++
		wantCounts["acme/ig_comment/graph/rejected"] += 2
		wantCounts["beta/ig_comment/rule/rejected"]++
		wantCounts["acme/ig_comment/audit/revoked"]++
		counts, err := s.VerdictCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gotCounts := map[string]int64{}
		for _, c := range counts {
			gotCounts[fmt.Sprintf("%s/%s/%s/%s", c.Tenant, c.Kind, c.Method, c.Verdict)] = c.N
		}
		if fmt.Sprint(gotCounts) != fmt.Sprint(wantCounts) {
			t.Errorf("VerdictCounts = %v, want %v", gotCounts, wantCounts)
		}

		// The flags: users of claims this call rejected or revoked only.
		acmeUsers := []string{"vera", "liar", "old-liar", "quentin", "quinn", "sam", "honor-liar", "pat"}
		if got := riskyUsers(t, s, "acme", acmeUsers, outcomeNow); !slices.Equal(got, []string{"honor-liar", "liar"}) {
			t.Errorf("acme's risky users = %v, want [honor-liar liar]", got)
		}
		if got := riskyUsers(t, s, "acme", []string{"liar"}, riskUntil.Add(-time.Microsecond)); len(got) != 1 {
			t.Errorf("liar not risky just before RiskUntil")
		}
		if got := riskyUsers(t, s, "acme", []string{"liar"}, riskUntil); len(got) != 0 {
			t.Errorf("liar still risky at RiskUntil")
		}
		if got := flagReason(t, b, dsn, "acme", "liar"); got != "claim acme/r1 found false" {
			t.Errorf("liar's flag reason %q, want the first claim found false", got)
		}
		if got := riskyUsers(t, s, "beta", []string{"beta-liar"}, outcomeNow); !slices.Equal(got, []string{"beta-liar"}) {
			t.Errorf("beta's risky users = %v", got)
		}
		if got := flagReason(t, b, dsn, "beta", "beta-liar"); got != "claim beta/b1 found false" {
			t.Errorf("beta-liar's flag reason %q", got)
		}
		// A later flag already stored wins, as with FlagUsers.
		if got := flagReason(t, b, dsn, "acme", "honor-liar"); got != "earlier" {
			t.Errorf("honor-liar's flag reason %q, want the longer flag's", got)
		}
		if got := riskyUsers(t, s, "acme", []string{"honor-liar"}, flaggedUntil.Add(-time.Microsecond)); len(got) != 1 {
			t.Errorf("honor-liar's longer flag was shortened")
		}
	})
}

// Decisions, rejections among them, flag nobody without a RiskUntil.
func TestRecordOutcomeWithoutRiskUntil(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		w := newOutcomeWorld(t, s)
		o := w.mixedOutcome()
		o.RiskUntil = time.Time{}
		res, err := s.RecordOutcome(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Flagged != 0 || len(res.Decided) != 4 || len(res.Revoked) != 1 {
			t.Errorf("RecordOutcome = %+v, want 4 decided, 1 revoked, nobody flagged", res)
		}
		if got := riskyUsers(t, s, "acme", []string{"liar", "honor-liar"}, outcomeNow); !slices.Equal(got, []string{"honor-liar"}) {
			t.Errorf("risky users = %v, want only the one flagged before", got)
		}
	})
}

// A failure anywhere inside the transaction, after earlier parts were
// written, leaves nothing written: no evidence, coverage, webhook sighting,
// quarantine, decision, feed number, counter, confirmation, revocation or
// flag. So does every refusal of a part, whatever its place.
func TestRecordOutcomeAllOrNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		w := newOutcomeWorld(t, s)
		before := dumpTables(t, b, dsn)
		checkNothingWritten := func(name string) {
			t.Helper()
			if after := dumpTables(t, b, dsn); after != before {
				t.Errorf("%s: the store changed:\nbefore\n%s\nafter\n%s", name, before, after)
			}
		}

		steps := []string{"evidence", "coverage", "quarantine", "decide", "audit", "revoke", "counts", "flags"}
		for _, failAt := range steps {
			injected := errors.New("injected failure")
			store.OnRecordOutcomeStep(s, func(step string) error {
				if step == failAt {
					return injected
				}
				return nil
			})
			res, err := s.RecordOutcome(ctx, w.mixedOutcome())
			if !errors.Is(err, injected) {
				t.Errorf("failing after %s: RecordOutcome = %+v, %v; want the injected error", failAt, res, err)
			}
			checkNothingWritten("failing after " + failAt)
		}

		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		for _, tt := range []struct {
			name   string
			change func(o *store.Outcome)
		}{
			{"a coverage with From after To, last", func(o *store.Outcome) {
				o.Coverages = append(o.Coverages, store.Coverage{Target: "2003", Edge: "comments", From: h(2), To: h(1), ReadAt: rd(3)})
			}},
			{"a coverage with a zero read time", func(o *store.Outcome) {
				o.Coverages = append(o.Coverages, store.Coverage{Target: "2003", Edge: "comments", To: h(1)})
			}},
			{"an evidence action without a target, last", func(o *store.Outcome) {
				o.Evidence = append(o.Evidence, store.EvidenceAction{Edge: "comments", ActionID: "x", Source: store.SourceGraph, SeenAt: outcomeNow})
			}},
			{"an evidence action of an unknown source", func(o *store.Outcome) {
				o.Evidence[1].Source = "scraper"
			}},
			{"a decision without a verdict, last", func(o *store.Outcome) {
				o.Decisions = append(o.Decisions, store.Decision{ClaimID: w.ids["a3"]})
			}},
			{"a quarantine without an owner", func(o *store.Outcome) { o.QuarantineOwner = "" }},
			{"a quarantine without a reason", func(o *store.Outcome) { o.Quarantine[1].Reason = "" }},
			{"a zero now", func(o *store.Outcome) { o.Now = time.Time{} }},
		} {
			steps := 0
			store.OnRecordOutcomeStep(s, func(string) error { steps++; return nil })
			o := w.mixedOutcome()
			tt.change(&o)
			if res, err := s.RecordOutcome(ctx, o); err == nil {
				t.Errorf("%s: RecordOutcome = %+v, want an error", tt.name, res)
			}
			if steps != 0 {
				t.Errorf("%s: %d steps ran: refused parts must be refused before anything is written", tt.name, steps)
			}
			checkNothingWritten(tt.name)
		}

		// The same outcome goes through whole, every step in order.
		var ran []string
		store.OnRecordOutcomeStep(s, func(step string) error { ran = append(ran, step); return nil })
		res, err := s.RecordOutcome(ctx, w.mixedOutcome())
		store.OnRecordOutcomeStep(s, nil)
		if err != nil {
			t.Fatalf("RecordOutcome after the failures: %v", err)
		}
		if !slices.Equal(ran, steps) {
			t.Errorf("steps %v, want %v", ran, steps)
		}
		if len(res.Decided) != 4 || res.Quarantined != 1 || res.Confirmed != 1 || len(res.Revoked) != 1 || res.Flagged != 3 {
			t.Errorf("RecordOutcome after the failures = %+v", res)
		}
		if dumpTables(t, b, dsn) == before {
			t.Error("the store did not change")
		}
	})
}

// An empty outcome writes nothing and succeeds, whatever else it holds.
func TestRecordOutcomeEmpty(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		newOutcomeWorld(t, s)
		before := dumpTables(t, b, dsn)
		steps := 0
		store.OnRecordOutcomeStep(s, func(string) error { steps++; return nil })
		for _, o := range []store.Outcome{
			{},
			{Now: outcomeNow},
			{QuarantineOwner: "batch-1", RiskUntil: riskUntil, Decisions: []store.Decision{}},
		} {
			res, err := s.RecordOutcome(ctx, o)
			if err != nil || fmt.Sprint(res) != fmt.Sprint(store.OutcomeResult{}) {
				t.Errorf("RecordOutcome(%+v) = %+v, %v; want nothing and no error", o, res, err)
			}
		}
		if steps != 0 {
			t.Errorf("an empty outcome ran %d steps", steps)
		}
		if after := dumpTables(t, b, dsn); after != before {
			t.Errorf("an empty outcome changed the store:\nbefore\n%s\nafter\n%s", before, after)
		}
	})
}
