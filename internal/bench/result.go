// Package bench is the machinery of `make bench`: it runs named scenarios
// against the engine and against the user's original plan (seed-baseline)
// on the same seeded workload, and reports both side by side.
package bench

import "time"

// Engine names, the columns of the report.
const (
	EngineOurs     = "engine"
	EngineBaseline = "seed-baseline"
)

// Sample is one simulated minute of a run, for the charts.
type Sample struct {
	Minute  int `json:"minute"`  // simulated minutes since the scenario started
	Pending int `json:"pending"` // claims not yet decided at the end of the minute
	Calls   int `json:"calls"`   // Graph API calls made during the minute (all tokens)
}

// EngineResult is what one engine did in one scenario. Shares are
// fractions (0..1); a share whose denominator is zero is 0.
type EngineResult struct {
	Engine string `json:"engine"`

	Claims  int `json:"claims"`  // submitted
	Decided int `json:"decided"` // decided by the end of the run

	WallSeconds        float64 `json:"wall_seconds"`          // wall-clock time of the run
	DecidedPerHourWall float64 `json:"decided_per_hour_wall"` // Decided / wall hours

	Verifiable        int     `json:"verifiable"`          // claims of kinds the Graph API can prove
	RealEvidence      int     `json:"real_evidence"`       // verifiable claims decided by a Graph read or a webhook (verified or rejected)
	RealEvidenceShare float64 `json:"real_evidence_share"` // RealEvidence / Verifiable

	Fraudulent         int     `json:"fraudulent"`           // by ground truth
	FraudApproved      int     `json:"fraud_approved"`       // final verdict approves it (after audit)
	FraudApprovedShare float64 `json:"fraud_approved_share"` // FraudApproved / Fraudulent

	Genuine              int     `json:"genuine"`                // by ground truth, verifiable
	GenuineRejected      int     `json:"genuine_rejected"`       // final verdict rejects it
	GenuineRejectedShare float64 `json:"genuine_rejected_share"` // GenuineRejected / Genuine

	Calls             int     `json:"calls"`              // Graph API calls made
	Throttles         int     `json:"throttles"`          // calls Meta answered with a throttle error
	BudgetUtilization float64 `json:"budget_utilization"` // Calls / the tokens' budget over the run's simulated span

	HistoryEvents    int     `json:"history_events"`     // Temporal history events of the run (0 for an engine without Temporal)
	EventsPerDecided float64 `json:"events_per_decided"` // HistoryEvents / Decided

	LatencyP50 time.Duration `json:"latency_p50"` // submit to verdict, simulated time
	LatencyP95 time.Duration `json:"latency_p95"`

	// ByVerdict counts final verdicts by "verdict/method" (e.g.
	// "verified/webhook", "approved_by_sample/sample", "revoked/audit"):
	// how each engine reached its decisions.
	ByVerdict map[string]int `json:"by_verdict,omitempty"`
	// Misjudged counts, by claim kind, the fraudulent claims approved
	// ("fraud approved/ig_mention") and the genuine ones rejected or
	// revoked ("genuine rejected/ig_comment"): where the errors are.
	Misjudged map[string]int `json:"misjudged,omitempty"`

	// WebhookEvents and WebhooksDelivered are metasim's count of webhook
	// events for the engine and of those delivered (0: no subscription).
	// Deliveries that fail under load leave genuine claims to reads.
	WebhookEvents     int `json:"webhook_events,omitempty"`
	WebhooksDelivered int `json:"webhooks_delivered,omitempty"`

	// Decided90Seconds is the wall time from the engine's start until 90%
	// of the claims it decided were decided.
	Decided90Seconds float64 `json:"decided_90_seconds,omitempty"`

	PeakPending     int     `json:"peak_pending"`
	PeakWorkerMemMB float64 `json:"peak_worker_mem_mb"` // peak heap in use of the process running the engine

	Timeline []Sample `json:"timeline"`
}

// ScenarioResult is one scenario run by every engine on the same workload.
type ScenarioResult struct {
	Name    string         `json:"name"`
	About   string         `json:"about"` // one line: what the scenario is
	Seed    int64          `json:"seed"`
	Speed   float64        `json:"speed"` // simulated seconds per wall second (1 = not accelerated)
	Claims  int            `json:"claims"`
	Engines []EngineResult `json:"engines"`
	// Targets lists the targets checked against this scenario, each
	// met or missed, for the report.
	Targets []Target `json:"targets,omitempty"`
}

// Target is one goal the report checks, with what was measured.
type Target struct {
	What     string `json:"what"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// GrowthPoint is one size of the cost-growth series (drain at 50k, 100k, 200k).
type GrowthPoint struct {
	Engine string `json:"engine"`
	Claims int    `json:"claims"`
	// ClaimsPerSecond is the bulk rate: 90% of the claims decided, over the
	// wall time until they were. (What stays open, premium claims waiting
	// for their tokens' reads, trickles out at the budget's pace and would
	// make every size look as slow as the cap is long.)
	ClaimsPerSecond float64 `json:"claims_per_second"`
	PeakWorkerMemMB float64 `json:"peak_worker_mem_mb"`
}

// Report is a whole `make bench` run.
type Report struct {
	Started   time.Time        `json:"started"`
	Machine   string           `json:"machine"` // e.g. "linux/amd64, 2 CPUs, go1.26.8"
	Store     string           `json:"store"`   // "sqlite" or "postgres"
	Scenarios []ScenarioResult `json:"scenarios"`
	Growth    []GrowthPoint    `json:"growth,omitempty"`
}
