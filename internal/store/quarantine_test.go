package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// A poison claim leased by a batch is quarantined with its reason and time:
// never claimed, decided, counted as open or fed to the platform again, until
// an operator releases it back to pending.
func TestQuarantine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "poison"), newClaim("acme", "other-owner"), newClaim("acme", "decided"),
			newClaim("acme", "deferred"), newClaim("acme", "fine"), newClaim("other", "o1"))
		poison, otherOwner, decided, deferred, fine := ids[0], ids[1], ids[2], ids[3], ids[4]
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-1", Limit: 1, TTL: time.Hour, Now: t0}); err != nil || len(got) != 1 || got[0].ID != poison {
			t.Fatalf("Claim: %v, %v", claimIDs(got), err)
		}
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-2", Limit: 1, TTL: time.Hour, Now: t0}); err != nil || len(got) != 1 || got[0].ID != otherOwner {
			t.Fatalf("Claim: %v, %v", claimIDs(got), err)
		}
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-1", Limit: 4, TTL: time.Hour, Now: t0}); err != nil || len(got) != 4 {
			t.Fatalf("Claim: %v, %v", claimIDs(got), err)
		}
		decideAt(t, s, t0, store.VerdictVerified, decided)
		if n, err := s.Defer(ctx, "batch-1", []store.Deferral{{ClaimID: deferred, NotBefore: t0, Reason: "transient"}}); err != nil || n != 1 {
			t.Fatalf("Defer: %d, %v", n, err)
		}

		at := t0.Add(time.Minute)
		reason := "panic: runtime error: index out of range [3] with length 3\nactivities.check(...)"
		n, err := s.Quarantine(ctx, "batch-1", []store.Quarantine{
			{ClaimID: poison, Reason: reason},
			{ClaimID: otherOwner, Reason: "not batch-1's"},
			{ClaimID: decided, Reason: "decided already"},
			{ClaimID: deferred, Reason: "handed back already"},
			{ClaimID: 999_999, Reason: "unknown"},
		}, at)
		if err != nil || n != 1 {
			t.Fatalf("Quarantine = %d, %v; want only the claim batch-1 holds", n, err)
		}
		got := getClaim(t, s, poison)
		if got.Status != store.StatusQuarantined || got.LastError != reason || !got.QuarantinedAt.Equal(at) ||
			got.LeaseOwner != "" || !got.LeaseExpiry.IsZero() || got.Verdict != "" || got.FeedSeq != 0 {
			t.Fatalf("quarantined claim = %+v", got)
		}
		if got.QuarantinedAt.Location() != time.UTC {
			t.Errorf("QuarantinedAt %v not in UTC", got.QuarantinedAt)
		}
		for _, id := range []int64{otherOwner, decided, deferred} {
			if c := getClaim(t, s, id); c.Status == store.StatusQuarantined || !c.QuarantinedAt.IsZero() {
				t.Errorf("claim %d quarantined though batch-1 did not hold it: %+v", id, c)
			}
		}

		// Out of the queue: not claimable even after its lease would have
		// expired, and nothing touches it as if it were leased.
		later := t0.Add(3 * time.Hour)
		if again, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-3", Limit: 100, TTL: time.Hour, Now: later}); err != nil || slices.Contains(claimIDs(again), poison) {
			t.Fatalf("Claim after quarantine: %v, %v", claimIDs(again), err)
		}
		if again, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "batch-4", Quotas: []store.Quota{{Tenant: "acme", Targets: -1}}, Limit: 100, TTL: time.Hour, Now: later.Add(3 * time.Hour)}); err != nil || slices.Contains(claimIDs(again), poison) {
			t.Fatalf("ClaimQuotas after quarantine: %v, %v", claimIDs(again), err)
		}
		if n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: "batch-1", ClaimIDs: []int64{poison}, TTL: time.Hour, Now: at}); err != nil || n != 0 {
			t.Errorf("ExtendLease of a quarantined claim: %d, %v", n, err)
		}
		if n, err := s.Defer(ctx, "batch-1", []store.Deferral{{ClaimID: poison, NotBefore: at}}); err != nil || n != 0 {
			t.Errorf("Defer of a quarantined claim: %d, %v", n, err)
		}
		if got, err := s.Decide(ctx, []store.Decision{{ClaimID: poison, Verdict: store.VerdictApprovedOnHonor, Method: "honor"}}, at); err != nil || len(got) != 0 {
			t.Errorf("Decide of a quarantined claim: %v, %v", got, err)
		}
		if feed, err := s.Feed(ctx, "acme", 0, 100); err != nil || slices.Contains(claimIDs(feed), poison) {
			t.Errorf("verdict feed: %v, %v", claimIDs(feed), err)
		}
		if exported, err := s.Decided(ctx, store.ExportFilter{}); err != nil || slices.Contains(claimIDs(exported), poison) {
			t.Errorf("export: %v, %v", claimIDs(exported), err)
		}
		loads, err := s.OpenLoad(ctx, at, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range loads {
			// Open: other-owner, deferred and fine; not the quarantined claim.
			if l.Tenant == "acme" && l.Ready+l.InFlight != 3 {
				t.Errorf("OpenLoad counts acme's quarantined claim as open: %+v", l)
			}
		}
		stats, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Tenant != "acme" || stats[0].Quarantined != 1 || stats[1].Quarantined != 0 {
			t.Fatalf("Stats = %+v, want acme with 1 quarantined", stats)
		}

		// The listing, by tenant and by page.
		list := func(f store.ExportFilter) []int64 {
			t.Helper()
			got, err := s.Quarantined(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return claimIDs(got)
		}
		if got := list(store.ExportFilter{}); !slices.Equal(got, []int64{poison}) {
			t.Errorf("Quarantined() = %v, want [%d]", got, poison)
		}
		if got := list(store.ExportFilter{Tenant: "other"}); len(got) != 0 {
			t.Errorf("Quarantined(other) = %v", got)
		}
		if got := list(store.ExportFilter{Tenant: "acme", AfterID: poison}); len(got) != 0 {
			t.Errorf("Quarantined(after %d) = %v", poison, got)
		}

		// Refused input.
		if _, err := s.Quarantine(ctx, "", []store.Quarantine{{ClaimID: fine, Reason: "x"}}, at); err == nil {
			t.Error("Quarantine with an empty owner succeeded")
		}
		if _, err := s.Quarantine(ctx, "batch-3", []store.Quarantine{{ClaimID: fine}}, at); err == nil {
			t.Error("Quarantine without a reason succeeded")
		}
		if _, err := s.Quarantine(ctx, "batch-3", []store.Quarantine{{ClaimID: fine, Reason: "x"}}, time.Time{}); err == nil {
			t.Error("Quarantine at a zero time succeeded")
		}

		// Released: pending again and claimable at once, the reason kept.
		if n, err := s.Release(ctx, []int64{poison, decided, fine, poison}); err != nil || n != 1 {
			t.Fatalf("Release = %d, %v; want only the quarantined claim", n, err)
		}
		got = getClaim(t, s, poison)
		if got.Status != store.StatusPending || !got.QuarantinedAt.IsZero() || got.LastError != reason || !got.NotBefore.IsZero() {
			t.Fatalf("released claim = %+v", got)
		}
		if n, err := s.Release(ctx, []int64{poison}); err != nil || n != 0 {
			t.Errorf("Release twice = %d, %v", n, err)
		}
		again, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-5", Limit: 100, TTL: time.Hour, Now: at})
		if err != nil || !slices.Contains(claimIDs(again), poison) {
			t.Fatalf("Claim after release: %v, %v", claimIDs(again), err)
		}
		if stats, _ := s.Stats(ctx); stats[0].Quarantined != 0 {
			t.Errorf("Stats after release: %+v", stats[0])
		}
		// A second poisoning quarantines it again, under the new lease.
		if n, err := s.Quarantine(ctx, "batch-5", []store.Quarantine{{ClaimID: poison, Reason: "again"}}, at.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("Quarantine after release = %d, %v", n, err)
		}
		if got := getClaim(t, s, poison); got.Status != store.StatusQuarantined || got.LastError != "again" {
			t.Fatalf("quarantined again: %+v", got)
		}
	})
}

// rawSubmittedAt is a submitted_at value for a raw INSERT in either dialect.
func rawNow(b backend) string {
	if b.name == testenv.SQLite {
		return fmt.Sprint(t0.UnixMicro())
	}
	return "now()"
}

// Migration 00007 goes down and up again on a database holding claims in
// every status: a quarantined claim goes back to pending (the code before
// knows no quarantine), every other claim keeps its every field, and ids keep
// growing past the largest ever given (SQLite's table rebuild carries the
// AUTOINCREMENT sequence over both ways).
func TestMigrationQuarantineDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		since := t0.Add(-time.Hour)
		c := newClaim("acme", "with-since")
		c.Since, c.Code = &since, "K7Q2"
		ids := submit(t, s, t0, newClaim("acme", "pending"), newClaim("acme", "leased"), newClaim("acme", "honor"),
			newClaim("acme", "poison"), c, newClaim("acme", "last"))
		if _, err := s.Claim(ctx, store.ClaimParams{Owner: "batch", Limit: 6, TTL: time.Hour, Now: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Defer(ctx, "batch", []store.Deferral{{ClaimID: ids[0], NotBefore: t0.Add(time.Minute), Reason: "later"}}); err != nil {
			t.Fatal(err)
		}
		decideAt(t, s, t0, store.VerdictApprovedOnHonor, ids[2])
		if _, err := s.MarkAudited(ctx, ids[2:3], t0); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Quarantine(ctx, "batch", []store.Quarantine{{ClaimID: ids[3], Reason: "panic: boom"}}, t0); err != nil || n != 1 {
			t.Fatalf("Quarantine: %d, %v", n, err)
		}
		before, err := s.Claims(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		// The largest id goes (an operator's delete): the next id must still
		// be past it.
		raw := closeAndMigrateDown(t, s, b, dsn, 7)
		if _, err := raw.Exec(`DELETE FROM claims WHERE id = ` + fmt.Sprint(ids[5])); err != nil {
			t.Fatal(err)
		}
		if err := store.MigrateDownTo(ctx, raw, b.name, 6); err != nil {
			t.Fatalf("down to 6: %v", err)
		}
		if _, err := raw.Exec(`SELECT quarantined_at FROM claims`); err == nil {
			t.Error("claims.quarantined_at still exists after down")
		}
		var status, lastError string
		if err := raw.QueryRow(`SELECT status, last_error FROM claims WHERE id = `+fmt.Sprint(ids[3])).Scan(&status, &lastError); err != nil ||
			status != store.StatusPending || lastError != "panic: boom" {
			t.Errorf("quarantined claim after down: %s %q (%v), want pending with its reason", status, lastError, err)
		}
		if _, err := raw.Exec(`UPDATE claims SET status = 'quarantined' WHERE id = ` + fmt.Sprint(ids[3])); err == nil {
			t.Error("the status CHECK of 00001 accepts quarantined after down")
		}
		var rawID int64
		if err := raw.QueryRow(`INSERT INTO claims (tenant_id, idem_key, user_ref, kind, target, submitted_at)
			VALUES ('acme', 'raw', 'u', 'ig_comment', '1', ` + rawNow(b) + `) RETURNING id`).Scan(&rawID); err != nil {
			t.Fatal(err)
		}
		if rawID <= ids[5] {
			t.Errorf("after down the next id is %d, not past the largest given, %d", rawID, ids[5])
		}
		if _, err := raw.Exec(`DELETE FROM claims WHERE id = ` + fmt.Sprint(rawID)); err != nil {
			t.Fatal(err)
		}

		s = openStore(t, dsn) // migrates up again
		after, err := s.Claims(ctx, ids[:5])
		if err != nil || len(after) != 5 {
			t.Fatalf("Claims after down and up: %d, %v", len(after), err)
		}
		for i, got := range after {
			want := before[i]
			if i == 3 {
				want.Status, want.QuarantinedAt = store.StatusPending, time.Time{}
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Errorf("claim %d after down and up:\n got %+v\nwant %+v", want.ID, got, want)
			}
		}
		next := submit(t, s, t0, newClaim("acme", "next"))
		if next[0] <= rawID {
			t.Errorf("after up the next id is %d, not past the largest given, %d", next[0], rawID)
		}
		if got, err := s.Feed(ctx, "acme", 0, 10); err != nil || !slices.Equal(claimIDs(got), ids[2:3]) {
			t.Errorf("feed after down and up: %v, %v", claimIDs(got), err)
		}
		leased, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-2", Limit: 10, TTL: time.Hour, Now: t0.Add(2 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.Quarantine(ctx, "batch-2", []store.Quarantine{{ClaimID: leased[0].ID, Reason: "again"}}, t0); err != nil || n != 1 {
			t.Fatalf("Quarantine after down and up: %d, %v", n, err)
		}
		if got, err := s.Quarantined(ctx, store.ExportFilter{Tenant: "acme"}); err != nil || len(got) != 1 {
			t.Fatalf("Quarantined after down and up: %v, %v", claimIDs(got), err)
		}
	})
}

// sqliteSchema describes the claims table of an SQLite database: its
// columns (PRAGMA table_info) and its indexes' SQL, whitespace folded.
func sqliteSchema(t *testing.T, db *sql.DB) (columns, indexes []string) {
	t.Helper()
	rows, err := db.Query(`SELECT cid, name, type, "notnull", COALESCE(dflt_value, ''), pk FROM pragma_table_info('claims')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			cid, notNull, pk int
			name, typ, dflt  string
		)
		if err := rows.Scan(&cid, &name, &typ, &notNull, &dflt, &pk); err != nil {
			t.Fatal(err)
		}
		columns = append(columns, fmt.Sprintf("%d %s %s notnull=%d default=%s pk=%d", cid, name, typ, notNull, dflt, pk))
	}
	irows, err := db.Query(`SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'claims' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer irows.Close()
	for irows.Next() {
		var name, def string
		if err := irows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		if def == "" {
			// An automatic index (the UNIQUE constraint): its columns.
			var cols []string
			crows, err := db.Query(`SELECT name FROM pragma_index_info(?) ORDER BY seqno`, name)
			if err != nil {
				t.Fatal(err)
			}
			for crows.Next() {
				var col string
				if err := crows.Scan(&col); err != nil {
					t.Fatal(err)
				}
				cols = append(cols, col)
			}
			crows.Close()
			def = "automatic (" + strings.Join(cols, ", ") + ")"
		}
		indexes = append(indexes, name+": "+strings.Join(strings.Fields(def), " "))
	}
	return columns, indexes
}

// SQLite's rebuild of claims in 00007 keeps the schema 00001-00006 made:
// the same columns in the same order, every index with its exact
// definition (partial indexes serve only queries repeating their
// conditions), and its Down gives back exactly that schema.
func TestMigrationQuarantineSQLiteSchema(t *testing.T) {
	ctx := context.Background()
	b := backends[0]
	open := func(dsn string) *sql.DB {
		path := b.rawDSN(dsn)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open(b.rawDriver, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	built := open(testenv.FreshDSN(t, testenv.SQLite))
	if err := store.MigrateUpTo(ctx, built, testenv.SQLite, 6); err != nil {
		t.Fatal(err)
	}
	cols6, idx6 := sqliteSchema(t, built)
	if len(cols6) != 25 || len(idx6) != 7 {
		t.Fatalf("schema at 00006: %d columns, %d indexes:\n%s\n%s", len(cols6), len(idx6), strings.Join(cols6, "\n"), strings.Join(idx6, "\n"))
	}
	if err := store.MigrateUpTo(ctx, built, testenv.SQLite, 7); err != nil {
		t.Fatal(err)
	}
	cols7, idx7 := sqliteSchema(t, built)
	wantCols := append(slices.Clone(cols6), "25 quarantined_at INTEGER notnull=0 default= pk=0")
	if !slices.Equal(cols7, wantCols) {
		t.Errorf("columns at 00007:\n%s\nwant\n%s", strings.Join(cols7, "\n"), strings.Join(wantCols, "\n"))
	}
	wantIdx := append(slices.Clone(idx6), "claims_quarantined: CREATE INDEX claims_quarantined ON claims (tenant_id, id) WHERE status = 'quarantined'")
	slices.Sort(wantIdx)
	// The UNIQUE constraint's automatic index is named after the table it
	// was created with.
	for i, def := range idx7 {
		idx7[i] = strings.Replace(def, "sqlite_autoindex_claims_new_1", "sqlite_autoindex_claims_1", 1)
	}
	slices.Sort(idx7)
	if !slices.Equal(idx7, wantIdx) {
		t.Errorf("indexes at 00007:\n%s\nwant\n%s", strings.Join(idx7, "\n"), strings.Join(wantIdx, "\n"))
	}
	var check string
	if err := built.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %s, %v", check, err)
	}
	var autoinc int
	if err := built.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'claims' AND sql LIKE '%AUTOINCREMENT%'`).Scan(&autoinc); err != nil || autoinc != 1 {
		t.Errorf("claims lost AUTOINCREMENT: %d, %v", autoinc, err)
	}

	if err := store.MigrateDownTo(ctx, built, testenv.SQLite, 6); err != nil {
		t.Fatal(err)
	}
	colsDown, idxDown := sqliteSchema(t, built)
	for i, def := range idxDown {
		idxDown[i] = strings.Replace(def, "sqlite_autoindex_claims_old_1", "sqlite_autoindex_claims_1", 1)
	}
	slices.Sort(idxDown)
	if !slices.Equal(colsDown, cols6) || !slices.Equal(idxDown, idx6) {
		t.Errorf("schema after down:\n%s\n%s\nwant\n%s\n%s", strings.Join(colsDown, "\n"), strings.Join(idxDown, "\n"), strings.Join(cols6, "\n"), strings.Join(idx6, "\n"))
	}
}
