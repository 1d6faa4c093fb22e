package governor

import (
	"encoding/json"
	"fmt"
	"time"
)

// Mode is how a tenant's claims are decided.
type Mode string

const (
	ModeAuto   Mode = "auto"   // the Governor picks from the load: verify, or honor when claims back up
	ModeVerify Mode = "verify" // every verifiable claim checked with the Graph API
	ModeSample Mode = "sample" // a sequential sample decides the batch (SamplingPlan)
	ModeHonor  Mode = "honor"  // approved on honor, audited later with spare budget
)

// ParseMode reads a mode as operators write it.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeVerify, ModeSample, ModeHonor:
		return m, nil
	}
	return "", fmt.Errorf("mode must be auto, verify, sample or honor, got %q", s)
}

// Duration is a time.Duration that JSON writes and reads as "10m", so that
// operators can type it in a signal and read it in a query.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64 // a plain number is nanoseconds, as time.Duration writes it
		if err := json.Unmarshal(b, &ns); err != nil {
			return fmt.Errorf(`duration must be a string like "10m": %s`, b)
		}
		*d = Duration(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// LoadThresholds are the Governor's settings, in platform (simulated) time.
//
// The backlog rule (HonorOpenAbove > 0, the default): auto verifies every
// standard claim (grouped reads and webhooks prove far more than the plan's
// one call per claim) while the standard tenants' open claims stay at or
// below HonorOpenAbove; above it, claims are backing up, and auto approves
// on honor (audited later) until they fall to HonorOpenBelow. That is the
// plan's Strategy C ("so nothing backs up"), measured on the queue itself.
//
// The arrival rule (HonorOpenAbove = 0, Governors started before the
// backlog rule): the user's plan as written, auto samples, honor starts above
// HonorAbove claims an hour and ends only below HonorBelow.
//
// Either way no automatic switch follows another within MinDwell, so a
// load hovering at a threshold does not flap. More than QueueWarning open
// claims raise a warning, which clears below QueueClear.
type LoadThresholds struct {
	HonorAbove     int      `json:"honor_above"`                // claims/hour (arrival rule); the user's plan: 20,000
	HonorBelow     int      `json:"honor_below"`                // claims/hour to return to sampling; default 80% of HonorAbove
	HonorOpenAbove int      `json:"honor_open_above,omitempty"` // standard tenants' open claims (backlog rule); 0: the arrival rule
	HonorOpenBelow int      `json:"honor_open_below,omitempty"` // open claims to return to verifying; default 20% of HonorOpenAbove
	MinDwell       Duration `json:"min_dwell"`                  // least time in a mode before the next automatic switch
	QueueWarning   int      `json:"queue_warning"`              // open claims (pending or leased); the user's plan: 5,000
	QueueClear     int      `json:"queue_clear"`                // the warning clears at or below this; default 80% of QueueWarning
}

// DefaultLoadThresholds follows the user's plan, with the backlog rule at
// the plan's queue warning.
func DefaultLoadThresholds() LoadThresholds {
	return LoadThresholds{HonorAbove: 20_000, HonorBelow: 16_000, HonorOpenAbove: 5_000, HonorOpenBelow: 1_000,
		MinDwell: Duration(10 * time.Minute), QueueWarning: 5_000, QueueClear: 4_000}
}

// ArrivalRule is t on the plan's arrival-rate rule (no backlog rule).
func (t LoadThresholds) ArrivalRule() LoadThresholds {
	t.HonorOpenAbove, t.HonorOpenBelow = 0, 0
	return t
}

// Merge applies the non-zero fields of a set-thresholds patch. When only
// the upper bound of a pair is given, the lower follows it at 80%.
func (t LoadThresholds) Merge(p LoadThresholds) LoadThresholds {
	if p.HonorAbove > 0 {
		t.HonorAbove = p.HonorAbove
		if p.HonorBelow == 0 {
			t.HonorBelow = p.HonorAbove * 4 / 5
		}
	}
	if p.HonorBelow > 0 {
		t.HonorBelow = p.HonorBelow
	}
	if p.HonorOpenAbove > 0 {
		t.HonorOpenAbove = p.HonorOpenAbove
		if p.HonorOpenBelow == 0 {
			t.HonorOpenBelow = p.HonorOpenAbove / 5
		}
	}
	if p.HonorOpenBelow > 0 {
		t.HonorOpenBelow = p.HonorOpenBelow
	}
	if p.MinDwell != 0 {
		t.MinDwell = p.MinDwell
	}
	if p.QueueWarning > 0 {
		t.QueueWarning = p.QueueWarning
		if p.QueueClear == 0 {
			t.QueueClear = p.QueueWarning * 4 / 5
		}
	}
	if p.QueueClear > 0 {
		t.QueueClear = p.QueueClear
	}
	return t
}

// Validate reports thresholds that would flap or never switch.
func (t LoadThresholds) Validate() error {
	if t.HonorAbove <= 0 || t.HonorBelow <= 0 || t.HonorBelow >= t.HonorAbove {
		return fmt.Errorf("need 0 < honor_below (%d) < honor_above (%d)", t.HonorBelow, t.HonorAbove)
	}
	if t.HonorOpenAbove < 0 || (t.HonorOpenAbove > 0 && (t.HonorOpenBelow < 0 || t.HonorOpenBelow >= t.HonorOpenAbove)) {
		return fmt.Errorf("need 0 <= honor_open_below (%d) < honor_open_above (%d)", t.HonorOpenBelow, t.HonorOpenAbove)
	}
	if t.MinDwell < 0 {
		return fmt.Errorf("min_dwell %v is negative", time.Duration(t.MinDwell))
	}
	if t.QueueWarning <= 0 || t.QueueClear < 0 || t.QueueClear >= t.QueueWarning {
		return fmt.Errorf("need 0 <= queue_clear (%d) < queue_warning (%d)", t.QueueClear, t.QueueWarning)
	}
	return nil
}

// BacklogMode is the automatic mode for standard tenants under the backlog
// rule, given their open claims, the current mode and how long it has held.
// It returns the mode and, when it changes, why.
func BacklogMode(current Mode, open int, held time.Duration, t LoadThresholds) (Mode, string) {
	if current != ModeHonor && current != ModeVerify { // the rule was just switched on
		return ModeVerify, "backlog rule: verify while claims do not back up"
	}
	if held < time.Duration(t.MinDwell) {
		return current, ""
	}
	switch {
	case current == ModeVerify && open > t.HonorOpenAbove:
		return ModeHonor, fmt.Sprintf("%d standard claims open, above %d: claims are backing up", open, t.HonorOpenAbove)
	case current == ModeHonor && open <= t.HonorOpenBelow:
		return ModeVerify, fmt.Sprintf("%d standard claims open, at or below %d: back to verifying", open, t.HonorOpenBelow)
	}
	return current, ""
}

// AutoMode is the automatic mode for standard tenants under the arrival
// rule given the claim arrival rate, the current mode and how long it has
// held. It returns the mode and, when it changes, why.
func AutoMode(current Mode, arrivalPerHour float64, held time.Duration, t LoadThresholds) (Mode, string) {
	if current != ModeHonor && current != ModeSample {
		current = ModeSample
	}
	if held < time.Duration(t.MinDwell) {
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
