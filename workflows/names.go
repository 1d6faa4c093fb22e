// Package workflows holds the claim pipeline's Temporal workflows and the
// names operators use to reach them (see the README's operator contract):
// the Schedule, the Dispatcher it fires every interval, one TenantBatch
// child per tenant per dispatch, the audit of provisional approvals and the
// evidence purge. The limiter, the Governor and token health keep their
// workflows in their own packages (limiter, internal/governor,
// internal/tokens); setup.go starts and registers them all.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/limiter"
)

// TaskQueue is where the worker polls for every workflow and activity.
const TaskQueue = "verification"

// Workflow type names, fixed so renaming a Go function never breaks a
// running Schedule or a recorded history.
const (
	DispatcherWorkflow  = "Dispatcher"
	TenantBatchWorkflow = "TenantBatch"
)

// ScheduleID is the Temporal Schedule that fires the Dispatcher.
const ScheduleID = "verification-dispatcher"

// QueryProgress is answered by TenantBatch with its Progress.
const QueryProgress = "progress"

// Custom search attributes (Keyword), created by `starter setup`: the
// tenant of a batch, the token it reads with (the limiters' own), the mode
// it runs in (the Governor's own).
var (
	TenantIDKey         = temporal.NewSearchAttributeKeyKeyword("TenantID")
	TokenIDKey          = temporal.NewSearchAttributeKeyKeyword(limiter.TokenIDAttribute)
	VerificationModeKey = governor.ModeKey
)

// SearchAttributeKeys lists the custom search attributes, for setup.
var SearchAttributeKeys = []temporal.SearchAttributeKeyKeyword{TenantIDKey, TokenIDKey, VerificationModeKey}

// Verification modes, shown in the VerificationMode search attribute.
const (
	ModeVerify = string(governor.ModeVerify) // every verifiable claim checked with the Graph API
	ModeSample = string(governor.ModeSample) // standard tenants: a sequential sample decides the batch
	ModeHonor  = string(governor.ModeHonor)  // approved on honor, audited later
	ModeAuto   = string(governor.ModeAuto)   // the Governor chooses sample or honor from the load
)

// BatchWorkflowID is `batch/<tenant-id>/<dispatch time>`.
func BatchWorkflowID(tenantID string, dispatched time.Time) string {
	return "batch/" + tenantID + "/" + dispatched.UTC().Format("20060102T150405Z")
}
