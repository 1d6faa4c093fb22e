package policy_test

import (
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/policy"
)

func TestAutoMode(t *testing.T) {
	th := policy.DefaultLoadThresholds()
	long := time.Hour
	tests := []struct {
		name    string
		current policy.Mode
		rate    float64
		held    time.Duration
		want    policy.Mode
		changed bool
	}{
		{"normal load: sample", policy.ModeSample, 5_000, long, policy.ModeSample, false},
		{"over the threshold: honor", policy.ModeSample, 25_000, long, policy.ModeHonor, true},
		{"at the threshold: stay", policy.ModeSample, 20_000, long, policy.ModeSample, false},
		{"honor, load between the thresholds: stay (hysteresis)", policy.ModeHonor, 18_000, long, policy.ModeHonor, false},
		{"honor, load below the lower threshold: sample", policy.ModeHonor, 12_000, long, policy.ModeSample, true},
		{"too soon after the last switch: stay", policy.ModeSample, 50_000, 5 * time.Minute, policy.ModeSample, false},
		{"no mode yet: sampling is the default", "", 1_000, long, policy.ModeSample, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := policy.AutoMode(tt.current, tt.rate, tt.held, th)
			if got != tt.want || (reason != "") != tt.changed {
				t.Fatalf("AutoMode = %s (%q), want %s (changed=%v)", got, reason, tt.want, tt.changed)
			}
		})
	}
}

func TestBacklogMode(t *testing.T) {
	th := policy.DefaultLoadThresholds()
	long := time.Hour
	tests := []struct {
		name    string
		current policy.Mode
		open    int
		held    time.Duration
		want    policy.Mode
		changed bool
	}{
		{"claims keep up: verify", policy.ModeVerify, 2_000, long, policy.ModeVerify, false},
		{"at the threshold: stay", policy.ModeVerify, 5_000, long, policy.ModeVerify, false},
		{"backing up: honor", policy.ModeVerify, 5_001, long, policy.ModeHonor, true},
		{"honor, between the thresholds: stay (hysteresis)", policy.ModeHonor, 3_000, long, policy.ModeHonor, false},
		{"honor, drained: verify", policy.ModeHonor, 1_000, long, policy.ModeVerify, true},
		{"too soon after the last switch: stay", policy.ModeVerify, 50_000, 5 * time.Minute, policy.ModeVerify, false},
		{"the rule just switched on: verify", policy.ModeSample, 100, long, policy.ModeVerify, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := policy.BacklogMode(tt.current, tt.open, tt.held, th)
			if got != tt.want || (reason != "") != tt.changed {
				t.Fatalf("BacklogMode = %s (%q), want %s (changed=%v)", got, reason, tt.want, tt.changed)
			}
		})
	}
}

// A load oscillating around the threshold switches once each way, not at
// every wobble.
func TestAutoModeDoesNotFlap(t *testing.T) {
	th := policy.DefaultLoadThresholds()
	mode, held, switches := policy.ModeSample, time.Hour, 0
	ramp := []float64{10_000, 15_000, 19_000, 21_000, 19_500, 20_500, 19_000, 21_000, 25_000, 22_000, 17_000, 19_000, 15_000, 10_000}
	for _, rate := range ramp {
		for range 10 { // ten minutes at each level, a minute a step
			next, reason := policy.AutoMode(mode, rate, held, th)
			held += time.Minute
			if next != mode {
				switches++
				t.Logf("%s → %s: %s", mode, next, reason)
				mode, held = next, 0
			}
		}
	}
	if switches != 2 || mode != policy.ModeSample {
		t.Fatalf("%d switches, ending in %s; want one each way", switches, mode)
	}
}

func TestLoadThresholdsValidate(t *testing.T) {
	if err := policy.DefaultLoadThresholds().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (policy.LoadThresholds{HonorAbove: 100, HonorBelow: 100, QueueWarning: 10}).Validate(); err == nil {
		t.Fatal("equal thresholds accepted: they would flap")
	}
	if err := policy.DefaultLoadThresholds().Merge(policy.LoadThresholds{HonorOpenAbove: 1000, HonorOpenBelow: 1000}).Validate(); err == nil {
		t.Fatal("equal backlog thresholds accepted: they would flap")
	}
	if th := policy.DefaultLoadThresholds().Merge(policy.LoadThresholds{HonorOpenAbove: 20_000}); th.HonorOpenBelow != 4_000 {
		t.Fatalf("honor_open_below follows honor_open_above at 20%%: got %d", th.HonorOpenBelow)
	}
}
