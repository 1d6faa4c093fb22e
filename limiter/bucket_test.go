package limiter_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/socialproof/verifier/limiter"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func times(ps []limiter.Permit) []time.Duration {
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = p.At.Sub(t0)
	}
	return out
}

func TestReserve(t *testing.T) {
	hour := limiter.Budget{Calls: 4, Window: time.Hour}
	tests := []struct {
		name   string
		bucket limiter.Bucket
		at     time.Duration
		n      int
		class  limiter.Class
		want   []time.Duration
	}{
		{"within budget: at an even pace", limiter.Bucket{Budget: hour}, 0, 3, limiter.Verify, []time.Duration{0, 15 * time.Minute, 30 * time.Minute}},
		{"over budget: the rest when the window frees", limiter.Bucket{Budget: hour}, 0, 6, limiter.Verify,
			[]time.Duration{0, 15 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour, time.Hour + 15*time.Minute}},
		{"guard widens the window", limiter.Bucket{Budget: hour, Guard: time.Minute}, 0, 5, limiter.Verify,
			[]time.Duration{0, 15 * time.Minute, 30 * time.Minute, 45 * time.Minute, time.Hour + time.Minute}},
		{"blocked: nothing before the block ends", limiter.Bucket{Budget: hour, BlockedUntil: t0.Add(10 * time.Minute)}, 0, 2, limiter.Verify,
			[]time.Duration{10 * time.Minute, 25 * time.Minute}},
		{"capacity lowered by the policy: slower pace", limiter.Bucket{Budget: hour, CapacityPercent: 50}, 0, 3, limiter.Verify,
			[]time.Duration{0, 30 * time.Minute, time.Hour}},
		{"horizon: only what is due soon", limiter.Bucket{Budget: hour, Horizon: 20 * time.Minute}, 0, 5, limiter.Verify,
			[]time.Duration{0, 15 * time.Minute}},
		{"horizon: at least one, however far", limiter.Bucket{Budget: hour, Horizon: 20 * time.Minute, BlockedUntil: t0.Add(2 * time.Hour)}, 0, 5, limiter.Verify,
			[]time.Duration{2 * time.Hour}},
		{"horizon: nothing while permits beyond it are out", limiter.Bucket{Budget: hour, Horizon: 20 * time.Minute,
			Permits: []limiter.Permit{{Seq: 1, At: t0.Add(30 * time.Minute)}}}, 0, 5, limiter.Verify, []time.Duration{}},
		{"paused: nothing", limiter.Bucket{Budget: hour, Paused: true}, 0, 2, limiter.Verify, []time.Duration{}},
		{"audit takes the permit free now", limiter.Bucket{Budget: hour}, 0, 2, limiter.Audit, []time.Duration{0}},
		{"24h window", limiter.Bucket{Budget: limiter.Budget{Calls: 2, Window: 24 * time.Hour}}, 0, 3, limiter.Verify,
			[]time.Duration{0, 12 * time.Hour, 24 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.bucket
			got := times(b.Reserve(t0.Add(tt.at), tt.n, tt.class))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Reserve = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAuditOnlyGetsWhatVerificationLeaves(t *testing.T) {
	b := limiter.Bucket{Budget: limiter.Budget{Calls: 4, Window: time.Hour}}
	if got := b.Reserve(t0, 6, limiter.Verify); len(got) != 6 {
		t.Fatalf("verify got %d", len(got))
	}
	if got := b.Reserve(t0.Add(time.Minute), 1, limiter.Audit); len(got) != 0 {
		t.Fatalf("audit got %v while verification waits", times(got))
	}
	// After verification's queue has drained, audit gets what is free now,
	// at the same pace.
	later := t0.Add(3 * time.Hour)
	if got := b.Reserve(later, 3, limiter.Audit); len(got) != 1 {
		t.Fatalf("audit got %d permits, want the 1 free now", len(got))
	}
	if got := b.Reserve(later.Add(15*time.Minute), 1, limiter.Audit); len(got) != 1 {
		t.Fatalf("audit got %d permits a spacing later", len(got))
	}
}

func TestReleaseReturnsFuturePermitsOnly(t *testing.T) {
	b := limiter.Bucket{Budget: limiter.Budget{Calls: 2, Window: time.Hour}}
	ps := b.Reserve(t0, 4, limiter.Verify) // 0, 30m, 1h, 1h30m
	seqs := []int64{ps[0].Seq, ps[2].Seq, ps[3].Seq}
	if n := b.Release(t0.Add(time.Second), seqs); n != 2 {
		t.Fatalf("released %d, want the 2 future permits", n)
	}
	// The freed slots are handed out again.
	if got := times(b.Reserve(t0.Add(time.Second), 2, limiter.Verify)); !slices.Equal(got, []time.Duration{time.Hour, time.Hour + 30*time.Minute}) {
		t.Fatalf("after release: %v", got)
	}
}

// TestBucketProperties drives buckets with random reservations, releases,
// capacity changes, blocks and clocks, and checks after every step that no
// rolling window holds more than the budget, no permit is handed out twice,
// and reservations of a class are first come, first served.
func TestBucketProperties(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		budget := limiter.Budget{Calls: 1 + rng.IntN(30), Window: []time.Duration{time.Hour, 24 * time.Hour}[rng.IntN(2)]}
		b := limiter.Bucket{Budget: budget, Guard: time.Duration(rng.IntN(60)) * time.Second, Horizon: time.Duration(rng.IntN(3)) * budget.Window / 10}
		now := t0
		seen := map[int64]bool{}
		var all []limiter.Permit // every permit still granted, for the window check
		for step := 0; step < 200; step++ {
			now = now.Add(time.Duration(rng.Int64N(int64(budget.Window / 5))))
			switch op := rng.IntN(10); {
			case op < 6:
				class := limiter.Class(rng.IntN(2))
				// First come, first served: no new permit before one an
				// earlier reservation of the class still holds.
				var lastAt time.Time
				for _, p := range all {
					if p.Class == class && p.At.After(lastAt) {
						lastAt = p.At
					}
				}
				got := b.Reserve(now, 1+rng.IntN(12), class)
				for _, p := range got {
					if seen[p.Seq] {
						t.Fatalf("seed %d: permit %d handed out twice", seed, p.Seq)
					}
					seen[p.Seq] = true
					if p.At.Before(now) {
						t.Fatalf("seed %d: permit in the past", seed)
					}
					if p.At.Before(lastAt) {
						t.Fatalf("seed %d: %s permit at %v before an earlier reservation's %v", seed, class, p.At, lastAt)
					}
					lastAt = p.At
					all = append(all, p)
				}
			case op < 7:
				var seqs []int64
				for _, p := range all {
					if rng.IntN(3) == 0 {
						seqs = append(seqs, p.Seq)
					}
				}
				b.Release(now, seqs)
				all = slices.DeleteFunc(all, func(p limiter.Permit) bool { return p.At.After(now) && slices.Contains(seqs, p.Seq) })
			case op < 8:
				b.CapacityPercent = rng.IntN(101)
			case op < 9:
				b.BlockedUntil = now.Add(time.Duration(rng.Int64N(int64(budget.Window))))
			default:
				b.Paused = !b.Paused
			}
			// No window of Meta's length holds more than the budget.
			slices.SortFunc(all, func(x, y limiter.Permit) int { return x.At.Compare(y.At) })
			for i, p := range all {
				n := 0
				for _, q := range all[:i+1] {
					if q.At.After(p.At.Add(-budget.Window)) {
						n++
					}
				}
				if n > budget.Calls {
					t.Fatalf("seed %d step %d: %d permits in the window ending %v, budget %d", seed, step, n, p.At, budget.Calls)
				}
			}
		}
	}
}

func TestRefusedCallersComeBackOneAfterAnother(t *testing.T) {
	b := limiter.Bucket{Budget: limiter.Budget{Calls: 4, Window: time.Hour}, Horizon: 20 * time.Minute}
	b.Reserve(t0, 4, limiter.Verify) // 0, 15m (the horizon stops it there)
	if got := b.Reserve(t0, 1, limiter.Verify); len(got) != 0 {
		t.Fatalf("granted %v beyond the horizon while permits are out", times(got))
	}
	first := b.Refused(t0, 2)
	second := b.Refused(t0, 1)
	if want := t0.Add(10 * time.Minute); !first.Equal(want) { // next free 30m, minus the horizon
		t.Fatalf("first retry at %v, want %v", first.Sub(t0), want.Sub(t0))
	}
	if want := first.Add(2 * 15 * time.Minute); !second.Equal(want) {
		t.Fatalf("second retry at %v, want after the first's two permits (%v)", second.Sub(t0), want.Sub(t0))
	}
}
