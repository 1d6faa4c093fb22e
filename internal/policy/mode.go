package policy

import (
	"fmt"
	"time"
)

// Mode is how a standard tenant's claims are decided.
type Mode string

const (
	ModeVerify Mode = "verify" // every verifiable claim checked with the Graph API
	ModeSample Mode = "sample" // a sequential sample decides the batch (SamplingPlan)
	ModeHonor  Mode = "honor"  // approved on honor, audited later with spare budget
)

// Load thresholds for switching between sampling and honor, with hysteresis:
// honor starts above HonorAbove claims an hour and ends only below HonorBelow,
// and no switch follows another within MinDwell, so a load hovering at the
// threshold does not flap.
type LoadThresholds struct {
	HonorAbove int           // claims/hour; the user's plan: 20,000
	HonorBelow int           // claims/hour to return to sampling; default 80% of HonorAbove
	MinDwell   time.Duration // least time in a mode before the next automatic switch
}

// DefaultLoadThresholds follows the user's plan.
func DefaultLoadThresholds() LoadThresholds {
	return LoadThresholds{HonorAbove: 20_000, HonorBelow: 16_000, MinDwell: 10 * time.Minute}
}

// Validate reports thresholds that would flap or never switch.
func (t LoadThresholds) Validate() error {
	if t.HonorAbove <= 0 || t.HonorBelow <= 0 || t.HonorBelow >= t.HonorAbove {
		return fmt.Errorf("need 0 < honor below (%d) < honor above (%d)", t.HonorBelow, t.HonorAbove)
	}
	if t.MinDwell < 0 {
		return fmt.Errorf("min dwell %v is negative", t.MinDwell)
	}
	return nil
}

// AutoMode is the automatic mode for standard tenants given the claim
// arrival rate, the current mode and how long it has held. It returns the
// mode and, when it changes, why.
func AutoMode(current Mode, arrivalPerHour float64, held time.Duration, t LoadThresholds) (Mode, string) {
	if current != ModeHonor && current != ModeSample {
		current = ModeSample
	}
	if held < t.MinDwell {
		return current, ""
	}
	switch {
	case current == ModeSample && arrivalPerHour > float64(t.HonorAbove):
		return ModeHonor, fmt.Sprintf("arrivals %.0f/h above %d/h: sampling cannot keep up", arrivalPerHour, t.HonorAbove)
	case current == ModeHonor && arrivalPerHour < float64(t.HonorBelow):
		return ModeSample, fmt.Sprintf("arrivals %.0f/h below %d/h: back to sampling", arrivalPerHour, t.HonorBelow)
	}
	return current, ""
}
