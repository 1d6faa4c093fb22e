package limiter

import "time"

// The limiter workflow's contract: its type, id, and the messages callers
// and operators send it. The workflow is in workflow.go; Client (client.go)
// sends these messages for the Graph activities.
const (
	WorkflowType = "Limiter"

	UpdateReserve   = "reserve"    // ReserveRequest → ReserveResponse
	SignalReport    = "report"     // UsageReport: what Graph calls saw, and unused permits
	SignalSetBudget = "set-budget" // BudgetSetting, e.g. {"calls":200,"window":"1h"}
	SignalPause     = "pause"      // no new permits until resume
	SignalResume    = "resume"
	QueryState      = "state" // State

	// TokenIDAttribute is the Keyword search attribute set on every limiter.
	TokenIDAttribute = "TokenID"

	// MaxPermitsPerReservation bounds one Update's answer.
	MaxPermitsPerReservation = 1000
)

// WorkflowID is `limiter/<token-id>`.
func WorkflowID(tokenID string) string { return "limiter/" + tokenID }

// BudgetSetting is a budget as operators and the task store write it.
type BudgetSetting struct {
	Calls  int    `json:"calls"`
	Window string `json:"window"` // "1h" or "24h"
}

// StartInput starts a limiter, or carries one over continue-as-new.
type StartInput struct {
	TokenID string
	Budget  BudgetSetting
	Speed   float64 // budget windows run this much faster in wall time
	// RunLength, when > 0, continues-as-new after that many reservations
	// even before the server suggests it (tests force many runs with it).
	RunLength int64 `json:",omitempty"`
	// Carried over continue-as-new; nil on first start.
	Carried *Carried `json:",omitempty"`
}

// Carried is the state a limiter hands to its next run.
type Carried struct {
	Bucket       Bucket
	LastReport   *Report `json:",omitempty"`
	Reservations int64
}

// ReserveRequest asks for N permits of a class. A caller that has made calls
// since its last message carries what they saw, so the limiter adapts before
// it grants more.
type ReserveRequest struct {
	N       int
	Class   Class
	Reports []Report `json:",omitempty"`
}

// ReserveResponse lists the granted permits, oldest first: fewer than asked,
// even none, when the limiter is paused, or for audit while verification
// waits.
type ReserveResponse struct {
	Permits      []Permit
	Guard        time.Duration // a permit must be used within Guard of its time
	Spacing      time.Duration // the pace of permits now
	RetryAt      time.Time     // when none were granted: when to ask again
	Paused       bool
	BlockedUntil time.Time `json:",omitzero"`
}

// UsageReport is sent by a Graph activity after its calls.
type UsageReport struct {
	Reports []Report // calls that carried usage headers or were throttled
	Release []int64  // permits the caller will not use
}

// State is the `state` query's answer and the limiter's memo.
type State struct {
	TokenID         string
	Budget          BudgetSetting
	Speed           float64
	WindowWall      time.Duration // the budget window in wall-clock time (window / speed)
	CapacityPercent int           // share of the budget the policy allows now (0: all)
	UsedInWindow    int           // permits in the window ending now
	QueuedVerify    int           // permits granted for later, by class
	QueuedAudit     int
	NextFree        time.Time
	BlockedUntil    time.Time `json:",omitzero"`
	Paused          bool
	LastReport      *Report `json:",omitempty"`
	Reservations    int64
}
