package store_test

// Helpers the black-box tests share: every test runs once per backend
// (SQLite always, PostgreSQL when TEST_DATABASE_URL is set), each on a fresh
// database.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for creating test schemas

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// backend creates fresh, isolated databases of one kind.
type backend struct {
	name string // testenv.SQLite or testenv.Postgres
	// rawDriver and rawDSN open the same database with database/sql, to
	// plant rows the Store API would refuse.
	rawDriver string
	rawDSN    func(dsn string) string
}

var backends = []backend{
	{
		name:      testenv.SQLite,
		rawDriver: "sqlite",
		rawDSN:    func(dsn string) string { return strings.TrimPrefix(dsn, "sqlite:") },
	},
	{
		name:      testenv.Postgres,
		rawDriver: "pgx",
		rawDSN:    func(dsn string) string { return dsn },
	},
}

// forEachBackend runs test once per backend, each with a fresh database.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			test(t, b, testenv.FreshDSN(t, b.name))
		})
	}
}

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// t0 is a fixed clock start; tests pass explicit times instead of sleeping.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newClaim(tenant, key string) claim.Claim {
	return claim.Claim{Tenant: tenant, Key: key, User: "user-" + key, Handle: "handle_" + key, Kind: claim.IGComment, Target: "17890000000000001"}
}

func submit(t *testing.T, s store.Store, now time.Time, claims ...claim.Claim) []int64 {
	t.Helper()
	results, err := s.Submit(context.Background(), claims, now)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	ids := make([]int64, len(results))
	for i, r := range results {
		if r.Duplicate {
			t.Fatalf("Submit: claim %d (%s/%s) unexpectedly a duplicate", i, claims[i].Tenant, claims[i].Key)
		}
		ids[i] = r.ID
	}
	return ids
}

func claimIDs(claims []store.Claim) []int64 {
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.ID
	}
	return ids
}

func getClaim(t *testing.T, s store.Store, id int64) store.Claim {
	t.Helper()
	claims, err := s.Claims(context.Background(), []int64{id})
	if err != nil {
		t.Fatalf("Claims: %v", err)
	}
	if len(claims) != 1 {
		t.Fatalf("Claims(%d): got %d claims, want 1", id, len(claims))
	}
	return claims[0]
}

// decideAt decides claims with one verdict at a time.
func decideAt(t *testing.T, s store.Store, at time.Time, verdict string, ids ...int64) {
	t.Helper()
	var decisions []store.Decision
	for _, id := range ids {
		decisions = append(decisions, store.Decision{ClaimID: id, Verdict: verdict, Method: "test"})
	}
	decided, err := s.Decide(context.Background(), decisions, at)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if len(decided) != len(ids) {
		t.Fatalf("Decide(%v): decided %v", ids, decided)
	}
}

// closeAndMigrateDown closes s and takes its database down to a migration
// version, returning a raw connection to inspect it.
func closeAndMigrateDown(t *testing.T, s store.Store, b backend, dsn string, version int64) *sql.DB {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := store.MigrateDownTo(context.Background(), raw, b.name, version); err != nil {
		t.Fatalf("down to %d: %v", version, err)
	}
	return raw
}

// fmtTime shows a time with its zone, so a time not returned in UTC shows.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano)
}

// evidenceStrings renders actions one per string, every field included, for
// comparisons with readable failures.
func evidenceStrings(actions []store.EvidenceAction) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = fmt.Sprintf("%s/%s/%s user=%q uid=%q text=%q time=%s source=%s deleted=%v seen=%s",
			a.Target, a.Edge, a.ActionID, a.Username, a.UserID, a.Text, fmtTime(a.Time), a.Source, a.Deleted, fmtTime(a.SeenAt))
	}
	return out
}

func evidenceOf(t *testing.T, s store.Store, targets ...string) []store.EvidenceAction {
	t.Helper()
	got, _, err := s.Evidence(context.Background(), targets)
	if err != nil {
		t.Fatalf("Evidence: %v", err)
	}
	return got
}

func saveEvidence(t *testing.T, s store.Store, actions ...store.EvidenceAction) int {
	t.Helper()
	n, err := s.SaveEvidence(context.Background(), actions)
	if err != nil {
		t.Fatalf("SaveEvidence: %v", err)
	}
	return n
}

func coveragesOf(t *testing.T, s store.Store, targets ...string) []store.Coverage {
	t.Helper()
	_, got, err := s.Evidence(context.Background(), targets)
	if err != nil {
		t.Fatalf("Evidence: %v", err)
	}
	return got
}

func coverageString(c store.Coverage) string {
	return fmt.Sprintf("%s/%s [%s, %s] read=%s", c.Target, c.Edge, fmtTime(c.From), fmtTime(c.To), fmtTime(c.ReadAt))
}

func coverageStrings(cs []store.Coverage) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = coverageString(c)
	}
	return out
}

// readClock is our clock, when reads are made: ReadAt. It runs apart from
// Meta's action times (From, To), as in accelerated runs, so a test mixing
// the two up shows.
var readClock = time.Date(2031, 7, 1, 0, 0, 0, 0, time.UTC)

// rd is n minutes on our clock.
func rd(n int) time.Time { return readClock.Add(time.Duration(n) * time.Minute) }

// flagReason reads a stored flag's reason, which the Store API does not return.
func flagReason(t *testing.T, b backend, dsn, tenant, user string) string {
	t.Helper()
	raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var reason string
	// Literals rather than parameters: the two drivers spell placeholders differently.
	err = raw.QueryRow(`SELECT reason FROM user_risk WHERE tenant_id = '` + tenant + `' AND user_ref = '` + user + `'`).Scan(&reason)
	if err != nil {
		t.Fatalf("read reason of %s/%s: %v", tenant, user, err)
	}
	return reason
}

func riskyUsers(t *testing.T, s store.Store, tenant string, users []string, now time.Time) []string {
	t.Helper()
	got, err := s.RiskyUsers(context.Background(), tenant, users, now)
	if err != nil {
		t.Fatalf("RiskyUsers: %v", err)
	}
	return got
}

// onTarget is newClaim on a given target.
func onTarget(tenant, key, target string) claim.Claim {
	c := newClaim(tenant, key)
	c.Target = target
	return c
}

// webhookAt is a webhook action on target seen at seen.
func webhookAt(target, id string, seen time.Time) store.EvidenceAction {
	return store.EvidenceAction{Target: target, Edge: "comments", ActionID: id, Source: store.SourceWebhook, SeenAt: seen}
}

func openLoad(t *testing.T, s store.Store, now, fedSince time.Time) []store.TenantLoad {
	t.Helper()
	loads, err := s.OpenLoad(context.Background(), now, fedSince)
	if err != nil {
		t.Fatalf("OpenLoad: %v", err)
	}
	return loads
}

// loadStrings renders loads one per string, times with their zone.
func loadStrings(loads []store.TenantLoad) []string {
	out := make([]string, len(loads))
	for i, l := range loads {
		out[i] = fmt.Sprintf("%s ready=%d targets=%d fed=%d oldest=%s inflight=%d targets=%d",
			l.Tenant, l.Ready, l.ReadyTargets, l.ReadyFed, fmtTime(l.OldestReady), l.InFlight, l.InFlightTargets)
	}
	return out
}
