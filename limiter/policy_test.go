package limiter_test

import (
	"testing"
	"time"

	"github.com/socialproof/verifier/limiter"
)

func TestPolicy(t *testing.T) {
	hour := limiter.Budget{Calls: 200, Window: time.Hour}
	p := limiter.DefaultPolicy(time.Hour)
	// withOwn is a bucket that has granted n permits by t1, when the report comes.
	t1 := t0.Add(time.Hour - time.Second)
	withOwn := func(n int) limiter.Bucket {
		b := limiter.Bucket{Budget: hour}
		b.Reserve(t1.Add(-time.Duration(n-1)*b.Spacing()), n, limiter.Verify)
		return b
	}
	tests := []struct {
		name         string
		bucket       limiter.Bucket
		report       limiter.Report
		wantCapacity int
		wantBlocked  time.Duration // from t1; 0: not blocked
	}{
		{"usage matches our own calls: full speed", withOwn(100), limiter.Report{At: t1, UsagePercent: 50}, 100, 0},
		{"others use 40%: we keep 55%", withOwn(20), limiter.Report{At: t1, UsagePercent: 50}, 55, 0},
		{"Meta counts a call more than we do: noise, full speed", withOwn(100), limiter.Report{At: t1, UsagePercent: 52}, 100, 0},
		{"others use 90%: we slow to 5%", withOwn(0), limiter.Report{At: t1, UsagePercent: 90}, 5, 0},
		{"others use everything: one call a window to probe", withOwn(0), limiter.Report{At: t1, UsagePercent: 100}, 1, 0},
		{"no usage header: unchanged", withOwn(10), limiter.Report{At: t1, UsagePercent: -1}, 0, 0},
		{"throttled with regain time", withOwn(10), limiter.Report{At: t1, UsagePercent: 100, Throttled: true, RegainAfter: 7 * time.Minute}, 1, 7 * time.Minute},
		{"throttled without regain time", withOwn(10), limiter.Report{At: t1, UsagePercent: -1, Throttled: true}, 0, 5 * time.Minute},
		{"recovers when others stop", func() limiter.Bucket { b := withOwn(10); b.CapacityPercent = 5; return b }(), limiter.Report{At: t1, UsagePercent: 5}, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.bucket
			p.Apply(&b, tt.report)
			if b.CapacityPercent != tt.wantCapacity {
				t.Errorf("capacity = %d%%, want %d%%", b.CapacityPercent, tt.wantCapacity)
			}
			var blocked time.Duration
			if !b.BlockedUntil.IsZero() {
				blocked = b.BlockedUntil.Sub(t1)
			}
			if blocked != tt.wantBlocked {
				t.Errorf("blocked for %v, want %v", blocked, tt.wantBlocked)
			}
		})
	}
}

func TestThrottleStopsPermitsUntilRegain(t *testing.T) {
	b := limiter.Bucket{Budget: limiter.Budget{Calls: 200, Window: time.Hour}}
	limiter.DefaultPolicy(time.Hour).Apply(&b, limiter.Report{At: t0, UsagePercent: -1, Throttled: true, RegainAfter: 10 * time.Minute})
	got := b.Reserve(t0.Add(time.Minute), 1, limiter.Verify)
	if len(got) != 1 || got[0].At.Before(t0.Add(10*time.Minute)) {
		t.Fatalf("permit at %v during the block", got[0].At)
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour} {
		if got, err := limiter.ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := limiter.ParseWindow("1m"); err == nil {
		t.Error("1m accepted")
	}
}
