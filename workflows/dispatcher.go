package workflows

import (
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/governor"
)

// DispatcherInput is fixed when the Schedule is created (`starter setup`).
type DispatcherInput struct {
	BatchSize int // claims per run
	// BacklogSize is claims per run while the Governor has standard tenants
	// on honor (a backlog); 0 keeps BatchSize.
	BacklogSize int           `json:",omitempty"`
	LeaseTTL    time.Duration // lease on claimed claims; TenantBatch renews it while it works
	// ClaimHorizon (platform time), when > 0, leases per verifying tenant
	// only claims on the targets its token can read within it (see
	// activities.ClaimBatchInput); 0 leases the oldest BatchSize claims.
	ClaimHorizon time.Duration `json:",omitempty"`
	Batch        BatchSettings // passed on to every TenantBatch; its Mode applies when the Governor cannot be reached
	// Governor starts the Governor if a load report finds it not running.
	Governor governor.Start
}

// DispatchResult summarises one run.
type DispatchResult struct {
	Claimed  int
	Mode     string   `json:",omitempty"` // the standard tenants' mode, from the Governor
	Children []string // TenantBatch workflow ids started
	Failed   []string // tenants whose child could not start; their claims were handed back
}

// Dispatcher claims a batch of pending claims (no more per tenant than its
// token can decide soon), groups it by tenant and starts
// one TenantBatch child per tenant. It waits only for the children to start
// (parent-close policy abandon), so a run takes seconds however long the
// verification takes, and the Schedule's next run is never blocked by it.
func Dispatcher(ctx workflow.Context, in DispatcherInput) (DispatchResult, error) {
	var res DispatchResult
	info := workflow.GetInfo(ctx)
	owner := info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID
	dispatched := workflow.Now(ctx)

	actx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	var a *activities.Activities
	var batch activities.ClaimBatchResult
	if err := workflow.ExecuteActivity(actx, a.ClaimBatch, activities.ClaimBatchInput{
		Owner: owner, Limit: in.BatchSize, BacklogLimit: in.BacklogSize, LeaseTTL: in.LeaseTTL, Horizon: in.ClaimHorizon, Mode: in.Batch.Mode,
	}).Get(ctx, &batch); err != nil {
		return res, err
	}
	res.Claimed = batch.Claimed

	modes := fallbackModes(in.Batch, batch.Groups)
	if workflow.GetVersion(ctx, changeGovernor, workflow.DefaultVersion, 1) == 1 {
		refs := make([]governor.TenantRef, len(batch.Groups))
		for i, g := range batch.Groups {
			refs[i] = governor.TenantRef{ID: g.TenantID, Tier: string(g.Tier), TokenID: g.TokenID}
		}
		var d governor.Directive
		gctx := workflow.WithActivityOptions(ctx, governorActivityOptions)
		if err := workflow.ExecuteActivity(gctx, a.ReportLoad, activities.ReportLoadInput{Tenants: refs, Start: in.Governor}).Get(ctx, &d); err != nil {
			// Claims are leased: start their batches in the configured mode
			// rather than hold them until the Governor is back.
			workflow.GetLogger(ctx).Error("governor unreachable; batches run in the configured mode", "mode", modes.Standard, "error", err)
		} else {
			modes = d
		}
		res.Mode = string(modes.Standard)
	}

	type started struct {
		group  activities.TenantGroup
		id     string
		future workflow.ChildWorkflowFuture
	}
	children := make([]started, 0, len(batch.Groups))
	for _, g := range batch.Groups {
		id := BatchWorkflowID(g.TenantID, dispatched)
		tm := modes.For(g.TenantID)
		settings := in.Batch
		settings.Mode, settings.ModeReason = string(tm.Mode), tm.Reason
		settings.StandardMode, settings.PlatformToken = string(modes.Standard), tm.PlatformToken
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        id,
			TaskQueue:         TaskQueue,
			ParentClosePolicy: enums.PARENT_CLOSE_POLICY_ABANDON,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				TenantIDKey.ValueSet(g.TenantID),
				VerificationModeKey.ValueSet(settings.mode()),
			),
		})
		f := workflow.ExecuteChildWorkflow(cctx, TenantBatchWorkflow, TenantBatchInput{
			TenantID:   g.TenantID,
			ClaimIDs:   g.ClaimIDs,
			LeaseOwner: owner,
			LeaseTTL:   in.LeaseTTL,
			Settings:   settings,
		})
		children = append(children, started{group: g, id: id, future: f})
	}

	var handBack []activities.Deferral
	for _, c := range children {
		if err := c.future.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("TenantBatch did not start; handing its claims back", "TenantID", c.group.TenantID, "error", err)
			res.Failed = append(res.Failed, c.group.TenantID)
			for _, id := range c.group.ClaimIDs {
				handBack = append(handBack, activities.Deferral{ClaimID: id, Reason: "batch workflow did not start"})
			}
			continue
		}
		res.Children = append(res.Children, c.id)
	}
	if len(handBack) > 0 {
		if err := workflow.ExecuteActivity(actx, a.DeferClaims, activities.DeferInput{Owner: owner, Deferrals: handBack}).Get(ctx, nil); err != nil {
			return res, err
		}
	}
	return res, nil
}

// changeGovernor versions the load report to the Governor.
const changeGovernor = "governor"

// fallbackModes is what batches run in without the Governor's word (see
// governor.ConfiguredMode).
func fallbackModes(s BatchSettings, groups []activities.TenantGroup) governor.Directive {
	configured := governor.Mode(s.Mode)
	d := governor.Directive{Standard: governor.ConfiguredMode(configured, governor.TenantRef{Tier: governor.TierStandard}).Mode}
	for _, g := range groups {
		d.Tenants = append(d.Tenants, governor.ConfiguredMode(configured, governor.TenantRef{ID: g.TenantID, Tier: string(g.Tier)}))
	}
	return d
}

// governorActivityOptions: a load report is quick; if the Governor does not
// answer within a few tries the Dispatcher goes on without it.
var governorActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 20 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
}

// storeActivityOptions: store calls are quick; a database outage is retried
// until it is over (the lease keeps the claims safe meanwhile).
var storeActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
	},
}
