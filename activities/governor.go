package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
)

// ReportLoadInput is the Dispatcher's load report: the tenants it is about
// to start batches for, and how to start the Governor if it is not running.
type ReportLoadInput struct {
	Tenants []policy.TenantRef
	Start   policy.GovernorStart
}

// ReportLoad counts the claims received and open in the store, reports them
// to the Governor (Update-with-Start: the Governor starts on first use) and
// returns each tenant's mode.
func (a *Activities) ReportLoad(ctx context.Context, in ReportLoadInput) (policy.Directive, error) {
	var d policy.Directive
	if a.Temporal == nil {
		return d, temporal.NewNonRetryableApplicationError("activities have no Temporal client to reach the Governor", "Config", nil)
	}
	stats, err := a.Store.Stats(ctx)
	if err != nil {
		return d, fmt.Errorf("report load: %w", err)
	}
	tenants, err := a.Store.Tenants(ctx)
	if err != nil {
		return d, fmt.Errorf("report load: %w", err)
	}
	premium := map[string]bool{}
	for _, t := range tenants {
		premium[t.ID] = t.Tier == store.TierPremium
	}
	report := policy.LoadReport{Tenants: in.Tenants}
	for _, s := range stats {
		report.Open += s.Pending + s.Leased
		if !premium[s.Tenant] {
			report.OpenStandard += s.Pending + s.Leased
		}
		report.Received += int64(s.Pending + s.Leased)
		for _, n := range s.Decided {
			report.Received += int64(n)
		}
	}
	start := a.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       policy.GovernorWorkflowID,
		TaskQueue:                a.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, policy.GovernorWorkflowType, in.Start)
	h, err := a.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   policy.GovernorWorkflowID,
			UpdateName:   policy.UpdateReportLoad,
			Args:         []any{report},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return d, fmt.Errorf("report load to the governor: %w", err)
	}
	if err := h.Get(ctx, &d); err != nil {
		return d, fmt.Errorf("report load to the governor: %w", err)
	}
	return d, nil
}

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

// CheckToken reads the tenant's account with the token: one Graph call. A
// broken token or a missing permission is an answer (Works false); Meta
// being down or throttling is an error, and the probe is tried later.
func (a *Activities) CheckToken(ctx context.Context, in TokenCheckInput) (TokenCheck, error) {
	tenant, err := a.Store.Tenant(ctx, in.TenantID)
	if err != nil {
		return TokenCheck{}, fmt.Errorf("check token: %w", err)
	}
	account := tenant.InstagramAccount()
	if account == "" {
		account = tenant.PageAccount()
	}
	if account == "" {
		return TokenCheck{Detail: "tenant has no Meta account"}, nil
	}
	session, err := a.session(ctx, in.TokenID)
	if err != nil {
		return TokenCheck{Detail: err.Error()}, nil
	}
	_, err = session.Get("/"+account, map[string]string{"fields": "id"})
	a.graphCalled(in.TokenID, err)
	var ge *graph.Error
	switch {
	case err == nil:
		return TokenCheck{Works: true, Detail: "read account " + account}, nil
	case errors.As(err, &ge) && (ge.Class == graph.TokenBroken || ge.Class == graph.Permission || ge.Class == graph.NotFound):
		return TokenCheck{Detail: ge.Error()}, nil
	}
	return TokenCheck{}, fmt.Errorf("check token %s: %w", in.TokenID, err)
}
