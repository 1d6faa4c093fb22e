// Package workflows holds the Temporal workflows of the verification engine
// and the names operators use to reach them (see the README's operator
// contract): the Schedule, the Dispatcher it fires every interval, and one
// TenantBatch child per tenant per dispatch.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/policy"
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

// Custom search attributes (Keyword), created by `starter setup`.
var (
	TenantIDKey         = temporal.NewSearchAttributeKeyKeyword("TenantID")
	TokenIDKey          = temporal.NewSearchAttributeKeyKeyword("TokenID")
	VerificationModeKey = temporal.NewSearchAttributeKeyKeyword("VerificationMode")
)

// SearchAttributeKeys lists the custom search attributes, for setup.
var SearchAttributeKeys = []temporal.SearchAttributeKeyKeyword{TenantIDKey, TokenIDKey, VerificationModeKey}

// Verification modes, shown in the VerificationMode search attribute.
const (
	ModeVerify = string(policy.ModeVerify) // every verifiable claim checked with the Graph API
	ModeSample = string(policy.ModeSample) // standard tenants: a sequential sample decides the batch
	ModeHonor  = string(policy.ModeHonor)  // approved on honor, audited later
	ModeAuto   = string(policy.ModeAuto)   // the Governor chooses sample or honor from the load
)

// BatchWorkflowID is `batch/<tenant-id>/<dispatch time>`.
func BatchWorkflowID(tenantID string, dispatched time.Time) string {
	return "batch/" + tenantID + "/" + dispatched.UTC().Format("20060102T150405Z")
}
