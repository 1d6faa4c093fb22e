package governor_test

import (
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/governor"
)

func TestAutoMode(t *testing.T) {
	th := governor.DefaultLoadThresholds()
	long := time.Hour
	tests := []struct {
		name    string
		current governor.Mode
		rate    float64
		held    time.Duration
		want    governor.Mode
		changed bool
	}{
		{"normal load: sample", governor.ModeSample, 5_000, long, governor.ModeSample, false},
		{"over the threshold: honor", governor.ModeSample, 25_000, long, governor.ModeHonor, true},
		{"at the threshold: stay", governor.ModeSample, 20_000, long, governor.ModeSample, false},
		{"honor, load between the thresholds: stay (hysteresis)", governor.ModeHonor, 18_000, long, governor.ModeHonor, false},
		{"honor, load below the lower threshold: sample", governor.ModeHonor, 12_000, long, governor.ModeSample, true},
		{"too soon after the last switch: stay", governor.ModeSample, 50_000, 5 * time.Minute, governor.ModeSample, false},
		{"no mode yet: sampling is the default", "", 1_000, long, governor.ModeSample, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := governor.AutoMode(tt.current, tt.rate, tt.held, th)
			if got != tt.want || (reason != "") != tt.changed {
				t.Fatalf("AutoMode = %s (%q), want %s (changed=%v)", got, reason, tt.want, tt.changed)
			}
		})
	}
}

func TestBacklogMode(t *testing.T) {
	th := governor.DefaultLoadThresholds()
	long := time.Hour
	tests := []struct {
		name    string
		current governor.Mode
		open    int
		held    time.Duration
		want    governor.Mode
		changed bool
	}{
		{"claims keep up: verify", governor.ModeVerify, 2_000, long, governor.ModeVerify, false},
		{"at the threshold: stay", governor.ModeVerify, 5_000, long, governor.ModeVerify, false},
		{"backing up: honor", governor.ModeVerify, 5_001, long, governor.ModeHonor, true},
		{"honor, between the thresholds: stay (hysteresis)", governor.ModeHonor, 3_000, long, governor.ModeHonor, false},
		{"honor, drained: verify", governor.ModeHonor, 1_000, long, governor.ModeVerify, true},
		{"too soon after the last switch: stay", governor.ModeVerify, 50_000, 5 * time.Minute, governor.ModeVerify, false},
		{"the rule just switched on: verify", governor.ModeSample, 100, long, governor.ModeVerify, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := governor.BacklogMode(tt.current, tt.open, tt.held, th)
			if got != tt.want || (reason != "") != tt.changed {
				t.Fatalf("BacklogMode = %s (%q), want %s (changed=%v)", got, reason, tt.want, tt.changed)
			}
		})
	}
}

// A load oscillating around the threshold switches once each way, not at
// every wobble.
func TestAutoModeDoesNotFlap(t *testing.T) {
	th := governor.DefaultLoadThresholds()
	mode, held, switches := governor.ModeSample, time.Hour, 0
	ramp := []float64{10_000, 15_000, 19_000, 21_000, 19_500, 20_500, 19_000, 21_000, 25_000, 22_000, 17_000, 19_000, 15_000, 10_000}
	for _, rate := range ramp {
		for range 10 { // ten minutes at each level, a minute a step
			next, reason := governor.AutoMode(mode, rate, held, th)
			held += time.Minute
			if next != mode {
				switches++
				t.Logf("%s → %s: %s", mode, next, reason)
				mode, held = next, 0
			}
		}
	}
	if switches != 2 || mode != governor.ModeSample {
		t.Fatalf("%d switches, ending in %s; want one each way", switches, mode)
	}
}

func TestLoadThresholdsValidate(t *testing.T) {
	if err := governor.DefaultLoadThresholds().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (governor.LoadThresholds{HonorAbove: 100, HonorBelow: 100, QueueWarning: 10}).Validate(); err == nil {
		t.Fatal("equal thresholds accepted: they would flap")
	}
	if err := governor.DefaultLoadThresholds().Merge(governor.LoadThresholds{HonorOpenAbove: 1000, HonorOpenBelow: 1000}).Validate(); err == nil {
		t.Fatal("equal backlog thresholds accepted: they would flap")
	}
	if th := governor.DefaultLoadThresholds().Merge(governor.LoadThresholds{HonorOpenAbove: 20_000}); th.HonorOpenBelow != 4_000 {
		t.Fatalf("honor_open_below follows honor_open_above at 20%%: got %d", th.HonorOpenBelow)
	}
}
