// Package governor holds the platform's verification mode: which tenants
// verify every claim, which sample, which run on honor, and why.
//
//   - mode.go and state.go are the pure core (no Temporal imports): modes,
//     thresholds with hysteresis, per-tenant overrides, broken and expiring
//     tenant tokens.
//   - contract.go names the workflow and its messages.
//   - workflow.go is the Governor workflow (id `governor`), one State as
//     durable state; every change is in its history with its reason.
//   - client.go is how the engine reaches it: the Dispatcher's load report
//     (Update-with-Start), the state query, token alerts.
package governor

import "time"

// The Governor's contract: the workflow (workflow.go, id `governor`) holds
// one State; the Dispatcher reports load to it each run and gets each
// tenant's mode back; operators steer it by signals.
const (
	WorkflowType = "Governor"
	WorkflowID   = "governor"

	UpdateReportLoad     = "report-load"    // LoadReport → Directive
	SignalSetMode        = "set-mode"       // SetMode
	SignalSetThresholds  = "set-thresholds" // LoadThresholds; zero fields keep their value
	SignalTokenAlert     = "token-alert"    // TokenAlert, from a batch whose own token failed
	QueryState           = "state"          // View
	AllTenants           = "*"
	maxRecordedChanges   = 50
	defaultRateWindowSim = 10 * time.Minute
)

// Tier names, as the task store writes them.
const (
	TierPremium  = "premium"
	TierStandard = "standard"
)

// Start starts the Governor, or carries it over continue-as-new.
type Start struct {
	Mode       Mode // the platform mode for standard tenants; "" means auto
	Thresholds LoadThresholds
	Speed      float64 // platform time runs this much faster than wall time
	// ProbeEvery is how often (platform time) a broken tenant token is
	// tried again; 0 means 5 minutes.
	ProbeEvery Duration `json:",omitempty"`
	// RunLength, when > 0, continues-as-new after that many load reports.
	RunLength int64  `json:",omitempty"`
	Carried   *State `json:",omitempty"`
}

// SetMode is the `set-mode` signal: {"mode":"honor","tenant":"*","reason":"..."}.
// Tenant "*" (or empty) sets the platform mode for standard tenants; a tenant
// id sets that tenant's override ("auto" clears it).
type SetMode struct {
	Mode   Mode   `json:"mode"`
	Tenant string `json:"tenant"`
	Reason string `json:"reason"`
}

// TokenAlert reports a tenant's own token as broken (Meta code 190, or it
// cannot read the tenant's account) or, from the Governor's probe, working
// again.
type TokenAlert struct {
	TokenID string    `json:"token"`
	Tenant  string    `json:"tenant"`
	Broken  bool      `json:"broken"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since,omitzero"`
	// State, from the token-health check or a connection: the token's
	// health (store.TokenState). "expiring" keeps a warning until the
	// tenant reconnects; any other state clears it.
	State     string    `json:"state,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // Meta's clock, for an expiring token
}

// TokenExpiring is the health state that raises a warning.
const TokenExpiring = "expiring"

// TenantRef names a tenant in a load report.
type TenantRef struct {
	ID      string
	Tier    string
	TokenID string // the tenant's own token; "" for the platform token
}

// LoadReport is what the Dispatcher tells the Governor each run: claims
// ever received (a counter, so the Governor derives the arrival rate), open
// claims, and the tenants it is about to start batches for.
type LoadReport struct {
	Received int64
	Open     int
	// OpenStandard counts the open claims of standard tenants, the ones the
	// platform mode decides (the backlog rule watches them; premium tenants
	// verify on their own budgets, whatever their backlog).
	OpenStandard int `json:",omitempty"`
	Tenants      []TenantRef
}

// TenantMode is how one tenant's batch runs.
type TenantMode struct {
	Tenant string
	Mode   Mode // verify, sample or honor
	// PlatformToken: a premium tenant whose own token is broken falls back
	// to the platform token, on the standard tenants' mode.
	PlatformToken bool   `json:",omitempty"`
	Reason        string `json:",omitempty"`
}

// Directive answers a LoadReport: the mode of each reported tenant, in the
// same order, and the standard tenants' mode (a premium batch whose token
// fails mid-run falls back to it).
type Directive struct {
	Standard Mode
	Tenants  []TenantMode
	Changes  []ModeChange `json:",omitempty"` // made by this report, so the Update's result records them
}

// For returns a tenant's mode from the directive, or the standard mode.
func (d Directive) For(tenant string) TenantMode {
	for _, t := range d.Tenants {
		if t.Tenant == tenant {
			return t
		}
	}
	return TenantMode{Tenant: tenant, Mode: d.Standard}
}

// ModeChange is one switch, with the inputs that led to it.
type ModeChange struct {
	At             time.Time
	Tenant         string // "*" for the standard tenants' platform mode
	From, To       string
	By             string // "auto", "operator", "token"
	Reason         string
	ArrivalPerHour float64
	Open           int
	OpenStandard   int `json:",omitempty"`
}

// ActivityCheckToken is the probe the Governor runs on a broken tenant
// token (TokenCheckInput → TokenCheck): one Graph read with it. The tokens
// package implements it; the Governor names it, so this package needs
// nothing of the token machinery.
const ActivityCheckToken = "CheckToken"

// TokenCheckInput names a tenant's own token to try.
type TokenCheckInput struct {
	TokenID  string
	TenantID string
}

// TokenCheck is a probe's outcome.
type TokenCheck struct {
	Works  bool
	Detail string // why not, or what was read
}
