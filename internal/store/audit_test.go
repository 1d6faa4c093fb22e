package store_test

// Audit: the audit queue and confirmations.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

func TestAuditQueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		var claims []claim.Claim
		for i := range 10 {
			claims = append(claims, newClaim("acme", fmt.Sprintf("k%d", i)))
		}
		claims = append(claims, newClaim("other", "k10"))
		c := submit(t, s, t0, claims...)
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		// c[0] is decided after c[1] and c[5]: the queue follows decided_at,
		// not ids. c[9] stays pending.
		decideAt(t, s, m(3), store.VerdictApprovedBySample, c[0])
		decideAt(t, s, m(1), store.VerdictApprovedOnHonor, c[1], c[10])
		decideAt(t, s, m(1), store.VerdictApprovedBySample, c[5])
		decideAt(t, s, m(0), store.VerdictVerified, c[2])
		decideAt(t, s, m(0), store.VerdictRejected, c[3])
		decideAt(t, s, m(0), store.VerdictUnverifiable, c[4])
		decideAt(t, s, m(2), store.VerdictApprovedOnHonor, c[6])
		decideAt(t, s, m(2), store.VerdictApprovedBySample, c[7])
		decideAt(t, s, m(10), store.VerdictApprovedOnHonor, c[8])

		queue := func(name string, limit int, before time.Time, want ...int64) {
			t.Helper()
			got, err := s.AuditQueue(ctx, limit, before)
			if err != nil {
				t.Fatalf("%s: AuditQueue: %v", name, err)
			}
			if ids := claimIDs(got); !slices.Equal(ids, want) {
				t.Errorf("%s: AuditQueue(%d, %v) = %v, want %v", name, limit, before, ids, want)
			}
			for _, q := range got {
				if q.Status != store.StatusDecided || !q.AuditedAt.IsZero() ||
					(q.Verdict != store.VerdictApprovedBySample && q.Verdict != store.VerdictApprovedOnHonor) {
					t.Errorf("%s: queued claim %d: status %q verdict %q audited %v", name, q.ID, q.Status, q.Verdict, q.AuditedAt)
				}
			}
		}
		queue("all", 100, m(60), c[1], c[5], c[10], c[6], c[7], c[0], c[8])

		if n, err := s.MarkAudited(ctx, []int64{c[6]}, m(20)); err != nil || n != 1 {
			t.Fatalf("MarkAudited: %d, %v", n, err)
		}
		if ok, err := s.Revoke(ctx, c[7], "gone", m(20)); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}
		queue("audited and revoked left", 100, m(60), c[1], c[5], c[10], c[0], c[8])
		queue("limit", 2, m(60), c[1], c[5])
		queue("decided at decidedBefore", 100, m(3), c[1], c[5], c[10], c[0])
		queue("decided just after decidedBefore", 100, m(3).Add(-time.Microsecond), c[1], c[5], c[10])
		queue("none decided yet", 100, m(0))
		queue("zero limit", 0, m(60))
	})
}

func TestMarkAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		c := submit(t, s, t0, newClaim("acme", "sample"), newClaim("acme", "honor"), newClaim("acme", "verified"),
			newClaim("acme", "rejected"), newClaim("acme", "pending"), newClaim("acme", "revoked"), newClaim("acme", "late"),
			newClaim("other", "honor"))
		sample, honor, verified, rejected, pending, revoked, late, otherHonor := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
		decideAt(t, s, t0, store.VerdictApprovedBySample, sample, revoked, late)
		decideAt(t, s, t0, store.VerdictApprovedOnHonor, honor, otherHonor)
		decideAt(t, s, t0, store.VerdictVerified, verified)
		decideAt(t, s, t0, store.VerdictRejected, rejected)
		revokedAt := t0.Add(time.Minute)
		if ok, err := s.Revoke(ctx, revoked, "gone", revokedAt); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}

		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		// More ids than one IN list holds, the one to mark last.
		many := make([]int64, 0, 2501)
		for i := range 2500 {
			many = append(many, -int64(i+1))
		}
		many = append(many, late)
		steps := []struct {
			name string
			ids  []int64
			now  time.Time
			want int
		}{
			{"provisional among others, repeated", []int64{sample, verified, rejected, pending, revoked, 999999, sample}, m(1), 1},
			{"again, with a new one", []int64{sample, honor, otherHonor}, m(2), 2},
			{"all audited already", []int64{sample, honor, otherHonor}, m(3), 0},
			{"nothing", nil, m(3), 0},
			{"thousands of ids", many, m(4), 1},
		}
		for _, st := range steps {
			n, err := s.MarkAudited(ctx, st.ids, st.now)
			if err != nil {
				t.Fatalf("%s: MarkAudited: %v", st.name, err)
			}
			if n != st.want {
				t.Errorf("%s: MarkAudited marked %d, want %d", st.name, n, st.want)
			}
		}
		if _, err := s.MarkAudited(ctx, []int64{sample}, time.Time{}); err == nil {
			t.Error("MarkAudited with a zero now succeeded")
		}

		// The first audit's time stays; verdicts stay; non-provisional claims
		// are not audited. Claims and Decided both load AuditedAt.
		want := map[int64]struct {
			verdict string
			audited time.Time
		}{
			sample:     {store.VerdictApprovedBySample, m(1)},
			honor:      {store.VerdictApprovedOnHonor, m(2)},
			otherHonor: {store.VerdictApprovedOnHonor, m(2)},
			late:       {store.VerdictApprovedBySample, m(4)},
			revoked:    {store.VerdictRevoked, revokedAt},
			verified:   {store.VerdictVerified, time.Time{}},
			rejected:   {store.VerdictRejected, time.Time{}},
			pending:    {"", time.Time{}},
		}
		byClaims, err := s.Claims(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		decided, err := s.Decided(ctx, store.ExportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(byClaims) != len(c) || len(decided) != len(c)-1 {
			t.Fatalf("Claims: %d claims, Decided: %d claims", len(byClaims), len(decided))
		}
		for _, got := range append(byClaims, decided...) {
			w := want[got.ID]
			if got.Verdict != w.verdict || !got.AuditedAt.Equal(w.audited) {
				t.Errorf("claim %d: verdict %q audited %v, want %q audited %v", got.ID, got.Verdict, got.AuditedAt, w.verdict, w.audited)
			}
		}
		if queued, err := s.AuditQueue(ctx, 10, m(10)); err != nil || len(queued) != 0 {
			t.Errorf("AuditQueue after auditing all: %v, %v; want none", claimIDs(queued), err)
		}

		stats, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Tenant != "acme" || stats[0].Audited != 4 || stats[1].Tenant != "other" || stats[1].Audited != 1 {
			t.Errorf("Stats: %+v, want acme with 4 audited (3 confirmed, 1 revoked) and other with 1", stats)
		}
	})
}

// Migration 00002 goes down and up again on a database holding data.
func TestMigrationRiskAndAuditDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		ids := submit(t, s, t0, newClaim("acme", "k1"))
		decideAt(t, s, t0, store.VerdictApprovedOnHonor, ids...)
		if _, err := s.MarkAudited(ctx, ids, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.FlagUsers(ctx, []store.UserFlag{{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		raw := closeAndMigrateDown(t, s, b, dsn, 1)
		if _, err := raw.Exec(`SELECT 1 FROM user_risk`); err == nil {
			t.Error("user_risk still exists after down")
		}
		if _, err := raw.Exec(`SELECT audited_at FROM claims`); err == nil {
			t.Error("claims.audited_at still exists after down")
		}

		s = openStore(t, dsn) // migrates up again
		if got := getClaim(t, s, ids[0]); got.Verdict != store.VerdictApprovedOnHonor || !got.AuditedAt.IsZero() {
			t.Errorf("claim after down and up: verdict %q audited %v", got.Verdict, got.AuditedAt)
		}
		if queued, err := s.AuditQueue(ctx, 10, t0); err != nil || !slices.Equal(claimIDs(queued), ids) {
			t.Errorf("AuditQueue after down and up: %v, %v; want %v", claimIDs(queued), err, ids)
		}
	})
}
