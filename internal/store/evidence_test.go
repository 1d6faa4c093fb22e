package store_test

// Evidence actions: SaveEvidence, Evidence and their purge.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

func TestSaveEvidenceUpsert(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		zone := time.FixedZone("UTC-5", -5*3600)
		comment := func(id, user, text string, at time.Time, source string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Username: user, UserID: "uid-" + user,
				Text: text, Time: at, Source: source, SeenAt: seen}
		}
		removal := func(id string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Source: store.SourceWebhook, Deleted: true, SeenAt: seen}
		}
		reaction := store.EvidenceAction{Target: "m1", Edge: "reactions", ActionID: "r1", Username: "Ann Example", UserID: "901",
			Source: store.SourceGraph, SeenAt: m(10)}

		// Each step saves, then checks the count of new actions and
		// everything stored on m1 and m2.
		steps := []struct {
			name    string
			save    []store.EvidenceAction
			wantNew int
			want    []store.EvidenceAction
		}{
			{
				name: "new actions; times in another zone, below the microsecond",
				save: []store.EvidenceAction{
					comment("c1", "ann", "hi CODE1", m(1).In(zone).Add(789), store.SourceGraph, m(10).In(zone).Add(1)),
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					reaction,
				},
				wantNew: 3,
				want: []store.EvidenceAction{
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					comment("c1", "ann", "hi CODE1", m(1), store.SourceGraph, m(10)),
					reaction,
				},
			},
			{
				name:    "an edit replaces user and text; a zero time keeps the stored time; the first source stays",
				save:    []store.EvidenceAction{comment("c1", "ann2", "edited CODE1", time.Time{}, store.SourceWebhook, m(20))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					comment("c1", "ann2", "edited CODE1", m(1), store.SourceGraph, m(20)),
					reaction,
				},
			},
			{
				name:    "a time replaces the stored time",
				save:    []store.EvidenceAction{comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					reaction,
				},
			},
			{
				name:    "a removal marks it deleted",
				save:    []store.EvidenceAction{removal("c2", m(30))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					{Target: "m1", Edge: "comments", ActionID: "c2", Time: m(2), Source: store.SourceWebhook, Deleted: true, SeenAt: m(30)},
					reaction,
				},
			},
			{
				name:    "a graph sighting un-deletes it, the webhook source stays",
				save:    []store.EvidenceAction{comment("c2", "bob", "CODE2 again", m(2), store.SourceGraph, m(40))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					comment("c2", "bob", "CODE2 again", m(2), store.SourceWebhook, m(40)),
					reaction,
				},
			},
			{
				name: "repeats within a call are saved in order: last wins, times only when set, first source",
				save: []store.EvidenceAction{
					comment("c3", "cy", "a", m(5), store.SourceWebhook, m(50)),
					comment("c1", "ann3", "x", time.Time{}, store.SourceGraph, m(50)),
					comment("c3", "cy", "b", time.Time{}, store.SourceGraph, m(51)),
					comment("c2", "bob", "p", m(7), store.SourceGraph, m(50)),
					comment("c2", "bob", "q", time.Time{}, store.SourceGraph, m(51)),
					removal("c3", m(52)),
				},
				wantNew: 1,
				want: []store.EvidenceAction{
					comment("c2", "bob", "q", m(7), store.SourceWebhook, m(51)),
					{Target: "m1", Edge: "comments", ActionID: "c3", Time: m(5), Source: store.SourceWebhook, Deleted: true, SeenAt: m(52)},
					comment("c1", "ann3", "x", m(3), store.SourceGraph, m(50)),
					reaction,
				},
			},
			{
				name: "the same action id on another edge or target is another action",
				save: []store.EvidenceAction{
					{Target: "m1", Edge: "tags", ActionID: "c1", Username: "tagger", Source: store.SourceGraph, SeenAt: m(60)},
					{Target: "m2", Edge: "comments", ActionID: "c1", Username: "other", Time: m(1), Source: store.SourceGraph, SeenAt: m(60)},
				},
				wantNew: 2,
				want: []store.EvidenceAction{
					comment("c2", "bob", "q", m(7), store.SourceWebhook, m(51)),
					{Target: "m1", Edge: "comments", ActionID: "c3", Time: m(5), Source: store.SourceWebhook, Deleted: true, SeenAt: m(52)},
					comment("c1", "ann3", "x", m(3), store.SourceGraph, m(50)),
					reaction,
					{Target: "m1", Edge: "tags", ActionID: "c1", Username: "tagger", Source: store.SourceGraph, SeenAt: m(60)},
					{Target: "m2", Edge: "comments", ActionID: "c1", Username: "other", Time: m(1), Source: store.SourceGraph, SeenAt: m(60)},
				},
			},
			{
				name:    "nothing",
				save:    nil,
				wantNew: 0,
			},
		}
		var want []store.EvidenceAction
		for _, st := range steps {
			n, err := s.SaveEvidence(ctx, st.save)
			if err != nil {
				t.Fatalf("%s: SaveEvidence: %v", st.name, err)
			}
			if n != st.wantNew {
				t.Errorf("%s: SaveEvidence = %d new, want %d", st.name, n, st.wantNew)
			}
			if st.want != nil {
				want = st.want
			}
			got := evidenceStrings(evidenceOf(t, s, "m1", "m2"))
			if w := evidenceStrings(want); !slices.Equal(got, w) {
				t.Errorf("%s: stored\n  %s\nwant\n  %s", st.name, strings.Join(got, "\n  "), strings.Join(w, "\n  "))
			}
		}
	})
}

// Thousands of actions and targets in one call, past any one statement or IN
// list.
func TestEvidenceInBulk(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		action := func(i int) store.EvidenceAction {
			return store.EvidenceAction{Target: fmt.Sprintf("media-%05d", i), Edge: "comments", ActionID: "c", Text: fmt.Sprint(i),
				Time: t0, Source: store.SourceGraph, SeenAt: t0}
		}
		var first, all []store.EvidenceAction
		var asked []string
		for i := range 3000 {
			if i%6 != 5 {
				first = append(first, action(i))
			}
			all = append(all, action(i))
			asked = append(asked, action(i).Target, action(i).Target)
		}
		if n := saveEvidence(t, s, first...); n != len(first) {
			t.Errorf("SaveEvidence(%d new): %d new", len(first), n)
		}
		if n := saveEvidence(t, s, all...); n != len(all)-len(first) {
			t.Errorf("SaveEvidence(%d, %d of them stored): %d new, want %d", len(all), len(first), n, len(all)-len(first))
		}
		for i := range 500 {
			asked = append(asked, fmt.Sprintf("unknown-%03d", i))
		}
		slices.Reverse(asked)
		got := evidenceOf(t, s, asked...)
		if g, w := evidenceStrings(got), evidenceStrings(all); !slices.Equal(g, w) {
			t.Errorf("Evidence(%d targets): %d actions, want %d in target order", len(asked), len(got), len(all))
		}
	})
}

func TestSaveEvidenceRefusesInvalidActions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		valid := store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0}
		tests := []struct {
			name   string
			change func(a *store.EvidenceAction)
		}{
			{"empty target", func(a *store.EvidenceAction) { a.Target = "" }},
			{"empty edge", func(a *store.EvidenceAction) { a.Edge = "" }},
			{"empty action id", func(a *store.EvidenceAction) { a.ActionID = "" }},
			{"empty source", func(a *store.EvidenceAction) { a.Source = "" }},
			{"unknown source", func(a *store.EvidenceAction) { a.Source = "scraper" }},
			{"zero seen_at", func(a *store.EvidenceAction) { a.SeenAt = time.Time{} }},
		}
		for _, tt := range tests {
			bad := valid
			bad.ActionID = "c2"
			tt.change(&bad)
			n, err := s.SaveEvidence(ctx, []store.EvidenceAction{valid, bad})
			if err == nil || !strings.Contains(err.Error(), "action 1") {
				t.Errorf("%s: SaveEvidence = %d, %v; want an error naming action 1", tt.name, n, err)
			}
		}
		// Nothing was written, not even the valid action.
		if got := evidenceOf(t, s, "m1", ""); len(got) != 0 {
			t.Errorf("after refused saves: %v, want none", evidenceStrings(got))
		}
		if n, err := s.SaveEvidence(ctx, []store.EvidenceAction{valid}); err != nil || n != 1 {
			t.Errorf("SaveEvidence(valid): %d, %v; want 1 new", n, err)
		}
	})
}

// A NUL in an action's free text (PostgreSQL cannot store one) is stored as
// U+FFFD, new or updated, on both databases; the save does not fail.
func TestSaveEvidenceReplacesNUL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		act := func(id, user, uid, text string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Username: user, UserID: uid, Text: text,
				Time: t0, Source: store.SourceGraph, SeenAt: seen}
		}
		if n := saveEvidence(t, s, act("c1", "ann\x00", "\x00uid", "CODE1\x00\x00 hi", t0),
			act("c2", "bob", "uid-b", "plain", t0)); n != 2 {
			t.Fatalf("SaveEvidence: %d new, want 2", n)
		}
		want := []store.EvidenceAction{
			act("c1", "ann\uFFFD", "\uFFFDuid", "CODE1\uFFFD\uFFFD hi", t0),
			act("c2", "bob", "uid-b", "plain", t0),
		}
		if got, w := evidenceStrings(evidenceOf(t, s, "m1")), evidenceStrings(want); !slices.Equal(got, w) {
			t.Errorf("new actions stored\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		// An edit brings a NUL into a stored action.
		saveEvidence(t, s, act("c2", "b\x00b", "uid-b", "edited\x00", t0.Add(time.Minute)))
		want[1] = act("c2", "b\uFFFDb", "uid-b", "edited\uFFFD", t0.Add(time.Minute))
		if got, w := evidenceStrings(evidenceOf(t, s, "m1")), evidenceStrings(want); !slices.Equal(got, w) {
			t.Errorf("edited action stored\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
	})
}

func TestEvidenceOrderAndTargets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		act := func(target, edge, id string, at time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: target, Edge: edge, ActionID: id, Time: at, Source: store.SourceGraph, SeenAt: m(100)}
		}
		// Byte order: upper case before lower case, "c10" before "c9",
		// whatever PostgreSQL's collation says.
		want := []store.EvidenceAction{
			act("M1", "comments", "c1", m(1)),
			act("m1", "comments", "c5", m(3)),
			act("m1", "comments", "c10", m(2)), // same time: by action id
			act("m1", "comments", "c9", m(2)),
			act("m1", "comments", "c2", m(1)),
			act("m1", "comments", "c0", time.Time{}), // zero times last, by action id
			act("m1", "comments", "c3", time.Time{}),
			act("m1", "reactions", "r2", m(5)),
			act("m1", "reactions", "r1", time.Time{}),
			act("m1", "tags", "t1", m(0)),
			act("m2", "Tags", "x", m(9)),
			act("m2", "comments", "c1", m(9)),
		}
		others := []store.EvidenceAction{act("m3", "comments", "c1", m(1)), act("m10", "comments", "c1", m(1))}
		shuffled := append(slices.Clone(others), want...)
		slices.Reverse(shuffled)
		saveEvidence(t, s, shuffled...)

		if got, w := evidenceStrings(evidenceOf(t, s, "m2", "m1", "unknown", "M1", "m1")), evidenceStrings(want); !slices.Equal(got, w) {
			t.Errorf("Evidence:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		if got := evidenceOf(t, s, "m10"); len(got) != 1 || got[0].Target != "m10" {
			t.Errorf("Evidence(m10) = %v, want m10's action only", evidenceStrings(got))
		}
		if got := evidenceOf(t, s); len(got) != 0 {
			t.Errorf("Evidence() = %v, want none", evidenceStrings(got))
		}
	})
}

// Concurrent callers saving the same actions, in different orders, count
// each new action once and do not deadlock.
func TestConcurrentSaveEvidence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const (
			savers  = 4
			actions = 1200 // more than one statement's worth
		)
		var all []store.EvidenceAction
		for i := range actions {
			all = append(all, store.EvidenceAction{Target: fmt.Sprintf("m%d", i%7), Edge: "comments", ActionID: fmt.Sprintf("c%04d", i),
				Source: store.SourceGraph, SeenAt: t0})
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
			errs  = make(chan error, savers)
		)
		for w := range savers {
			s := openStore(t, dsn)
			mine := slices.Clone(all)
			if w%2 == 1 {
				slices.Reverse(mine)
			}
			// Each saver sends other slices, so their statements differ.
			mine = mine[w*100:]
			wg.Go(func() {
				for _, part := range [][]store.EvidenceAction{mine[:len(mine)/2], mine} {
					n, err := s.SaveEvidence(context.Background(), part)
					if err != nil {
						errs <- fmt.Errorf("saver %d: %w", w, err)
						return
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if total != actions {
			t.Errorf("savers counted %d new actions in all, want %d", total, actions)
		}
	})
}

// The purge deletes webhook sightings older than its cutoff with the
// evidence: a target last fed before it no longer counts as fed, whatever
// fedSince.
func TestPurgeEvidenceForgetsWebhookTargets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		submit(t, s, t0, onTarget("acme", "k1", "101"), onTarget("acme", "k2", "102"), onTarget("acme", "k3", "103"))
		saveEvidence(t, s, webhookAt("101", "c1", h(1)), webhookAt("102", "c1", h(2)), webhookAt("103", "c1", h(1)))
		// 103's action is read by Graph then pushed again by a webhook, in one
		// call (folded, the Graph sighting's source wins): its target stays
		// fed.
		saveEvidence(t, s, store.EvidenceAction{Target: "103", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: h(3)},
			webhookAt("103", "c1", h(3)))
		fed := func() int {
			t.Helper()
			loads := openLoad(t, s, h(10), t0)
			if len(loads) != 1 {
				t.Fatalf("OpenLoad: %v, want acme only", loadStrings(loads))
			}
			return loads[0].ReadyFed
		}
		if got := fed(); got != 3 {
			t.Fatalf("ReadyFed before the purge: %d, want 3", got)
		}
		if _, err := s.PurgeEvidence(ctx, h(2)); err != nil {
			t.Fatal(err)
		}
		if got := fed(); got != 2 {
			t.Errorf("ReadyFed after purging before h(2): %d, want 2 (102 at the cutoff and 103 seen again kept)", got)
		}
		if _, err := s.PurgeEvidence(ctx, h(3)); err != nil {
			t.Fatal(err)
		}
		if got := fed(); got != 1 {
			t.Errorf("ReadyFed after purging before h(3): %d, want 1", got)
		}
	})
}

// Migration 00003 goes down and up again on a database holding evidence.
func TestMigrationEvidenceDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		saveEvidence(t, s, store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0})
		if _, err := s.AddCoverage(ctx, store.Coverage{Target: "m1", Edge: "comments", To: t0, ReadAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.FlagUsers(ctx, []store.UserFlag{{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		raw := closeAndMigrateDown(t, s, b, dsn, 2)
		for _, table := range []string{"evidence", "evidence_coverage"} {
			if _, err := raw.Exec(`SELECT 1 FROM ` + table); err == nil {
				t.Errorf("%s still exists after down", table)
			}
		}
		// Only 00003 went down.
		if _, err := raw.Exec(`SELECT 1 FROM user_risk`); err != nil {
			t.Errorf("user_risk after down to 2: %v", err)
		}

		s = openStore(t, dsn) // migrates up again
		if got := evidenceOf(t, s, "m1"); len(got) != 0 {
			t.Errorf("evidence after down and up: %v, want none", evidenceStrings(got))
		}
		if n := saveEvidence(t, s, store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0}); n != 1 {
			t.Errorf("SaveEvidence after down and up: %d new, want 1", n)
		}
		if got := coveragesOf(t, s, "m1"); len(got) != 0 {
			t.Errorf("coverage after down and up: %v, want none", coverageStrings(got))
		}
		c := store.Coverage{Target: "m1", Edge: "comments", From: t0, To: t0.Add(time.Hour), ReadAt: t0.Add(2 * time.Hour)}
		if got, err := s.AddCoverage(ctx, c); err != nil || coverageString(got) != coverageString(c) {
			t.Errorf("AddCoverage after down and up: %s, %v; want %s", coverageString(got), err, coverageString(c))
		}
		if got := riskyUsers(t, s, "acme", []string{"u1"}, t0); !slices.Equal(got, []string{"u1"}) {
			t.Errorf("flag after down and up: risky %v, want [u1]", got)
		}
	})
}
