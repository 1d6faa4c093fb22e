package store_test

// Coverage: AddCoverage, and coverage read and purged with its actions.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

func TestAddCoverageMerges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		var zero time.Time
		type span struct{ from, to, read time.Time }
		tests := []struct {
			name   string
			stored []span // added first, in order
			add    span
			want   span
		}{
			{"nothing stored", nil, span{h(1), h(2), rd(1)}, span{h(1), h(2), rd(1)}},
			{"overlap, later", []span{{h(1), h(3), rd(1)}}, span{h(2), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"overlap, earlier", []span{{h(2), h(5), rd(1)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			{"inside the stored one: only the read time changes", []span{{h(1), h(5), rd(1)}}, span{h(2), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			{"containing the stored one", []span{{h(2), h(3), rd(1)}}, span{h(1), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"touching, after", []span{{h(1), h(3), rd(1)}}, span{h(3), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"touching, before", []span{{h(3), h(5), rd(1)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			// Overlapping, the spans merge whichever was read first, and the
			// later read time is kept.
			{"overlap, read earlier: merged, the stored read time stays", []span{{h(1), h(3), rd(5)}}, span{h(2), h(5), rd(2)}, span{h(1), h(5), rd(5)}},
			{"containing, read earlier: merged, the stored read time stays", []span{{h(2), h(3), rd(5)}}, span{h(1), h(5), rd(2)}, span{h(1), h(5), rd(5)}},
			{"inside, read earlier: nothing changes", []span{{h(1), h(5), rd(5)}}, span{h(2), h(3), rd(2)}, span{h(1), h(5), rd(5)}},
			{"touching, read earlier", []span{{h(3), h(5), rd(5)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(5)}},
			// Disjoint, the later read is kept, whatever its span.
			{"disjoint, older, read earlier: the stored one stays", []span{{h(4), h(5), rd(2)}}, span{h(1), h(2), rd(1)}, span{h(4), h(5), rd(2)}},
			{"disjoint, newer, read later: replaces", []span{{h(1), h(2), rd(1)}}, span{h(4), h(5), rd(2)}, span{h(4), h(5), rd(2)}},
			{"disjoint, older, read later: replaces", []span{{h(4), h(5), rd(1)}}, span{h(1), h(2), rd(2)}, span{h(1), h(2), rd(2)}},
			{"disjoint, newer, read earlier: the stored one stays", []span{{h(1), h(2), rd(2)}}, span{h(4), h(5), rd(1)}, span{h(1), h(2), rd(2)}},
			{"a microsecond apart: disjoint", []span{{h(1), h(2), rd(1)}}, span{h(2).Add(time.Microsecond), h(3), rd(2)}, span{h(2).Add(time.Microsecond), h(3), rd(2)}},
			{"read a microsecond later: replaces", []span{{h(4), h(5), rd(1)}}, span{h(1), h(2), rd(1).Add(time.Microsecond)}, span{h(1), h(2), rd(1).Add(time.Microsecond)}},
			{"zero from, overlapping", []span{{h(2), h(3), rd(1)}}, span{zero, h(4), rd(2)}, span{zero, h(4), rd(2)}},
			{"zero from, ending inside", []span{{h(2), h(5), rd(1)}}, span{zero, h(3), rd(2)}, span{zero, h(5), rd(2)}},
			{"zero from, ending before: disjoint, read earlier", []span{{h(3), h(5), rd(2)}}, span{zero, h(1), rd(1)}, span{h(3), h(5), rd(2)}},
			{"zero from, ending before: disjoint, read later", []span{{h(3), h(5), rd(1)}}, span{zero, h(1), rd(2)}, span{zero, h(1), rd(2)}},
			{"zero from stored, overlap", []span{{zero, h(3), rd(1)}}, span{h(2), h(5), rd(2)}, span{zero, h(5), rd(2)}},
			{"zero from stored, disjoint newer", []span{{zero, h(3), rd(1)}}, span{h(4), h(5), rd(2)}, span{h(4), h(5), rd(2)}},
			{"zero from both", []span{{zero, h(3), rd(2)}}, span{zero, h(2), rd(1)}, span{zero, h(3), rd(2)}},
			{"a point", []span{{h(1), h(3), rd(1)}}, span{h(4), h(4), rd(2)}, span{h(4), h(4), rd(2)}},
			// [1,2] and [2,3] merge; [8,9] read later replaces them; [3,8] merges with it.
			{"merges accumulate", []span{{h(1), h(2), rd(1)}, {h(2), h(3), rd(2)}, {h(8), h(9), rd(3)}}, span{h(3), h(8), rd(4)}, span{h(3), h(9), rd(4)}},
			// [1,2] and [2,3] merge, read at 3; [8,9] read earlier is dropped; [3,8] merges with [1,3].
			{"merges accumulate, a disjoint earlier read dropped", []span{{h(1), h(2), rd(1)}, {h(2), h(3), rd(3)}, {h(8), h(9), rd(2)}}, span{h(3), h(8), rd(2)}, span{h(1), h(8), rd(3)}},
		}
		for i, tt := range tests {
			target := fmt.Sprintf("case-%02d", i)
			for _, sp := range tt.stored {
				if _, err := s.AddCoverage(ctx, store.Coverage{Target: target, Edge: "comments", From: sp.from, To: sp.to, ReadAt: sp.read}); err != nil {
					t.Fatalf("%s: AddCoverage(stored): %v", tt.name, err)
				}
			}
			want := coverageString(store.Coverage{Target: target, Edge: "comments", From: tt.want.from, To: tt.want.to, ReadAt: tt.want.read})
			got, err := s.AddCoverage(ctx, store.Coverage{Target: target, Edge: "comments", From: tt.add.from, To: tt.add.to, ReadAt: tt.add.read})
			if err != nil {
				t.Fatalf("%s: AddCoverage: %v", tt.name, err)
			}
			if g := coverageString(got); g != want {
				t.Errorf("%s: AddCoverage returned %s, want %s", tt.name, g, want)
			}
			if g := coverageStrings(coveragesOf(t, s, target)); !slices.Equal(g, []string{want}) {
				t.Errorf("%s: stored %v, want %s", tt.name, g, want)
			}
		}

		// Times come back in UTC, to the microsecond.
		zone := time.FixedZone("UTC+9", 9*3600)
		got, err := s.AddCoverage(ctx, store.Coverage{Target: "zoned", Edge: "tags", From: h(1).In(zone).Add(999), To: h(2).In(zone).Add(1),
			ReadAt: rd(1).In(zone).Add(1)})
		if err != nil {
			t.Fatal(err)
		}
		want := coverageString(store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(2), ReadAt: rd(1)})
		if g := coverageString(got); g != want {
			t.Errorf("AddCoverage in another zone returned %s, want %s", g, want)
		}
		if g := coverageStrings(coveragesOf(t, s, "zoned")); !slices.Equal(g, []string{want}) {
			t.Errorf("stored %v, want %s", g, want)
		}
		// Merged at the stored precision: a read time later by less than a
		// microsecond is the same read time.
		if got, err := s.AddCoverage(ctx, store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(2), ReadAt: rd(1).Add(999)}); err != nil || coverageString(got) != want {
			t.Errorf("AddCoverage read under a microsecond later: %s, %v; want %s", coverageString(got), err, want)
		}

		// Each is valid but for one thing.
		for _, bad := range []store.Coverage{
			{Edge: "comments", To: h(1), ReadAt: rd(1)},
			{Target: "bad", To: h(1), ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", From: h(2), To: h(1), ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", From: h(1), To: h(2)}, // zero read time: the purge could never delete it
		} {
			if got, err := s.AddCoverage(ctx, bad); err == nil {
				t.Errorf("AddCoverage(%s) = %s, want an error", coverageString(bad), coverageString(got))
			}
		}
		if got := coveragesOf(t, s, "bad", ""); len(got) != 0 {
			t.Errorf("after refused adds: %v, want none", coverageStrings(got))
		}
		// A zero read time is refused when coverage is stored too, and the
		// stored coverage is left as it is.
		unread := store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(5)}
		if got, err := s.AddCoverage(ctx, unread); err == nil {
			t.Errorf("AddCoverage(%s) over stored coverage = %s, want an error", coverageString(unread), coverageString(got))
		}
		if g := coverageStrings(coveragesOf(t, s, "zoned")); !slices.Equal(g, []string{want}) {
			t.Errorf("after a refused add: stored %v, want %s", g, want)
		}
	})
}

func TestCoverages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		want := []store.Coverage{
			{Target: "B", Edge: "comments", From: h(1), To: h(2), ReadAt: rd(5)}, // byte order: upper case first
			{Target: "a", Edge: "comments", To: h(3), ReadAt: rd(4)},
			{Target: "a", Edge: "reactions", From: h(2), To: h(4), ReadAt: rd(3)},
			{Target: "a", Edge: "tags", From: h(1), To: h(1), ReadAt: rd(2)},
			{Target: "b", Edge: "comments", From: h(5), To: h(6), ReadAt: rd(1)},
		}
		for _, c := range slices.Backward(want) { // not in the order wanted
			if _, err := s.AddCoverage(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AddCoverage(context.Background(), store.Coverage{Target: "c", Edge: "comments", To: h(1), ReadAt: rd(1)}); err != nil {
			t.Fatal(err)
		}
		// The stored targets last, after more unknown ones than one IN list holds.
		var asked []string
		for i := range 2500 {
			asked = append(asked, fmt.Sprintf("0-unknown-%04d", i))
		}
		asked = append(asked, "b", "a", "B", "a")
		if got, w := coverageStrings(coveragesOf(t, s, asked...)), coverageStrings(want); !slices.Equal(got, w) {
			t.Errorf("Coverages:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		if got := coveragesOf(t, s); len(got) != 0 {
			t.Errorf("Coverages() = %v, want none", coverageStrings(got))
		}
	})
}

// Evidence reads the actions and the coverage at one moment. Another batch
// storing a read of the claimant's tag (the action, then its coverage)
// between Evidence's two reads must not show up in the second alone: a
// coverage without the action it vouches for rejects the genuine claim the
// action proves (the chaos suite's PostgreSQL scenario did, twice).
func TestEvidenceReadsOneSnapshot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		reader := openStore(t, dsn)
		writer := openStore(t, dsn) // another worker's connection
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		tag := func(id string, at time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "17841400000000001", Edge: "tags", ActionID: id, Username: "user_" + id,
				Time: at, Source: store.SourceGraph, SeenAt: rd(1)}
		}
		earlier := tag("m-1", h(1))
		saveEvidence(t, writer, earlier)
		before := store.Coverage{Target: earlier.Target, Edge: "tags", From: h(1), To: h(1), ReadAt: rd(1)}
		if _, err := writer.AddCoverage(ctx, before); err != nil {
			t.Fatal(err)
		}

		claimants := tag("m-2", h(2))
		wrote := false
		store.OnEvidenceRead(reader, func() {
			saveEvidence(t, writer, claimants)
			if _, err := writer.AddCoverage(ctx, store.Coverage{Target: claimants.Target, Edge: "tags", From: h(1), To: h(2), ReadAt: rd(2)}); err != nil {
				t.Error(err)
			}
			wrote = true
		})
		actions, coverages, err := reader.Evidence(ctx, []string{claimants.Target})
		store.OnEvidenceRead(reader, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !wrote {
			t.Fatal("the concurrent write never ran: Evidence did not call the hook")
		}
		if got, want := evidenceStrings(actions), evidenceStrings([]store.EvidenceAction{earlier}); !slices.Equal(got, want) {
			t.Errorf("actions read = %v, want %v (the moment before the concurrent write)", got, want)
		}
		if got, want := coverageStrings(coverages), coverageStrings([]store.Coverage{before}); !slices.Equal(got, want) {
			t.Errorf("coverage read = %v, want %v: a coverage read after the actions vouches for %s, which is not among them",
				got, want, claimants.ActionID)
		}
		// Read again, both show the concurrent write.
		actions, coverages, err = reader.Evidence(ctx, []string{claimants.Target})
		if err != nil {
			t.Fatal(err)
		}
		if len(actions) != 2 || len(coverages) != 1 || !coverages[0].To.Equal(h(2)) {
			t.Errorf("after the write: actions %v, coverage %v; want both actions and the coverage to %s",
				evidenceStrings(actions), coverageStrings(coverages), fmtTime(h(2)))
		}
	})
}

// Concurrent adders of one (target, edge) lose no merge: every span holds
// the same instant, so all merge, each widens one end, and the read times
// of the adds are all different, the latest kept.
func TestConcurrentAddCoverage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const adders = 8
		ctx := context.Background()
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		stores := make([]store.Store, adders)
		for w := range stores {
			stores[w] = openStore(t, dsn)
		}
		// run has every adder add its rounds, all starting together when
		// start is closed.
		run := func(target string, rounds int, start <-chan struct{}) {
			var (
				wg   sync.WaitGroup
				errs = make(chan error, adders)
			)
			for w, s := range stores {
				wg.Go(func() {
					<-start
					for r := range rounds {
						i := w*rounds + r + 1
						c := store.Coverage{Target: target, Edge: "comments", From: t0, To: m(i), ReadAt: rd(i)}
						if i%2 == 0 {
							c = store.Coverage{Target: target, Edge: "comments", From: m(-i), To: t0, ReadAt: rd(i)}
						}
						if _, err := s.AddCoverage(ctx, c); err != nil {
							errs <- fmt.Errorf("adder %d: %w", w, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			want := coverageString(store.Coverage{Target: target, Edge: "comments", From: m(-adders * rounds), To: m(adders*rounds - 1),
				ReadAt: rd(adders * rounds)})
			if got := coverageStrings(coveragesOf(t, stores[0], target)); !slices.Equal(got, []string{want}) {
				t.Errorf("%s after concurrent adds: %v, want %s", target, got, want)
			}
		}

		// From nothing stored: the adders race to insert, then to merge.
		now := make(chan struct{})
		close(now)
		run("free", 25, now)

		// Queued behind a transaction holding the stored row, the adders all
		// read it the moment it commits: an unlocked read would let them
		// merge into the same old span and overwrite each other.
		if _, err := stores[0].AddCoverage(ctx, store.Coverage{Target: "queued", Edge: "comments", From: t0, To: t0, ReadAt: rd(0)}); err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`UPDATE evidence_coverage SET to_at = to_at WHERE target = 'queued'`); err != nil {
			t.Fatalf("lock the stored row: %v", err)
		}
		queue := make(chan struct{})
		released := make(chan error, 1)
		go func() {
			close(queue)
			// Long enough for the adders to reach the lock; were it too
			// short, the test would pass without testing the lock.
			time.Sleep(300 * time.Millisecond)
			released <- tx.Commit()
		}()
		run("queued", 1, queue)
		if err := <-released; err != nil {
			t.Errorf("release the stored row: %v", err)
		}
	})
}

// The purge deletes coverage read before the cutoff, and coverage of any
// (target, edge) that loses an action: coverage vouches for the actions
// stored under it. The cutoff, seen_at and ReadAt are all our clock; From
// and To (Meta's) play no part.
func TestPurgeEvidence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		act := func(target, edge, id string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: target, Edge: edge, ActionID: id, Text: "personal", Source: store.SourceWebhook, SeenAt: seen}
		}
		saveEvidence(t, s,
			act("m1", "comments", "old", h(1)), act("m1", "comments", "at-cutoff", h(2)),
			act("m2", "comments", "new", h(3)), act("m2", "comments", "old", h(1)),
			act("m3", "comments", "new", h(3)),
			act("m3", "reactions", "old", h(1)), // another edge of m3
			act("m4", "comments", "old", h(1)),  // m3's edge on another target
			act("m5", "comments", "resighted", h(1)),
		)
		saveEvidence(t, s, act("m5", "comments", "resighted", h(5))) // seen again: kept
		// Meta's times far from the cutoff either way, so that judging by
		// them instead of ReadAt shows.
		late, early := h(100), h(-100)
		for _, c := range []store.Coverage{
			{Target: "m1", Edge: "comments", From: early, To: late, ReadAt: h(3)},   // read after, an action purged: deleted
			{Target: "m1", Edge: "tags", From: early, To: late, ReadAt: h(1)},       // read before, no actions: deleted
			{Target: "m1", Edge: "reactions", From: early, To: early, ReadAt: h(2)}, // read at the cutoff, no actions: kept
			{Target: "m2", Edge: "comments", From: early, To: late, ReadAt: h(3)},   // read after, one action of two purged: deleted
			{Target: "m3", Edge: "comments", From: early, To: early, ReadAt: h(3)},  // untouched edge, read after: kept
			{Target: "m5", Edge: "comments", From: early, To: early, ReadAt: h(3)},  // its action was seen before but seen again: kept
		} {
			if _, err := s.AddCoverage(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		targets := []string{"m1", "m2", "m3", "m4", "m5"}
		kept := []string{
			coverageString(store.Coverage{Target: "m1", Edge: "reactions", From: early, To: early, ReadAt: h(2)}),
			coverageString(store.Coverage{Target: "m3", Edge: "comments", From: early, To: early, ReadAt: h(3)}),
			coverageString(store.Coverage{Target: "m5", Edge: "comments", From: early, To: early, ReadAt: h(3)}),
		}

		// Strictly before the cutoff: what was seen or read at it stays.
		n, err := s.PurgeEvidence(ctx, h(2))
		if err != nil || n != 4 {
			t.Fatalf("PurgeEvidence: %d, %v; want 4 purged", n, err)
		}
		var ids []string
		for _, a := range evidenceOf(t, s, targets...) {
			ids = append(ids, a.Target+"/"+a.Edge+"/"+a.ActionID)
		}
		if want := []string{"m1/comments/at-cutoff", "m2/comments/new", "m3/comments/new", "m5/comments/resighted"}; !slices.Equal(ids, want) {
			t.Errorf("after purge: %v, want %v", ids, want)
		}
		if got := coverageStrings(coveragesOf(t, s, targets...)); !slices.Equal(got, kept) {
			t.Errorf("coverage after purge:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(kept, "\n  "))
		}

		if n, err := s.PurgeEvidence(ctx, h(2)); err != nil || n != 0 {
			t.Errorf("second PurgeEvidence: %d, %v; want 0", n, err)
		}
		if got := coverageStrings(coveragesOf(t, s, targets...)); !slices.Equal(got, kept) {
			t.Errorf("coverage after a second purge: %v, want %v", got, kept)
		}
		if _, err := s.PurgeEvidence(ctx, time.Time{}); err == nil {
			t.Error("PurgeEvidence with a zero cutoff succeeded")
		}
		if n, err := s.PurgeEvidence(ctx, h(10)); err != nil || n != 4 {
			t.Errorf("PurgeEvidence of everything: %d, %v; want 4", n, err)
		}
		if got := coveragesOf(t, s, targets...); len(got) != 0 {
			t.Errorf("coverage after purging everything: %v", coverageStrings(got))
		}
	})
}
