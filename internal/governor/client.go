package governor

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// Client is how the engine reaches the Governor from outside workflow
// code: the Dispatcher's load report, the state query, token alerts.
// (Workflows signal it directly: workflow.SignalExternalWorkflow with
// WorkflowID and SignalTokenAlert.)
type Client struct {
	Temporal  client.Client
	TaskQueue string // where the Governor is started on first use
}

// ReportLoad reports load with Update-with-Start (the Governor starts on
// first use, from start) and returns each tenant's mode.
func (c *Client) ReportLoad(ctx context.Context, report LoadReport, start Start) (Directive, error) {
	var d Directive
	op := c.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       WorkflowID,
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, WorkflowType, start)
	h, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   WorkflowID,
			UpdateName:   UpdateReportLoad,
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

// stateTimeout bounds the wait for the Governor's state: callers go on in
// the configured mode rather than stall behind it.
const stateTimeout = 3 * time.Second

// State is the Governor's state, if it answers within a few seconds.
func (c *Client) State(ctx context.Context) (View, error) {
	var view View
	if c == nil || c.Temporal == nil {
		return view, fmt.Errorf("governor state: no Temporal client")
	}
	qctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	v, err := c.Temporal.QueryWorkflow(qctx, WorkflowID, "", QueryState)
	if err == nil {
		err = v.Get(&view)
	}
	if err != nil {
		return view, fmt.Errorf("governor state: %w", err)
	}
	return view, nil
}

// ModeOf returns what mode each tenant is in now, as the Governor's state
// says; when it does not answer (err non-nil), ConfiguredMode, as the
// Dispatcher assumes without the Governor.
func (c *Client) ModeOf(ctx context.Context, configured Mode) (func(TenantRef) TenantMode, error) {
	view, err := c.State(ctx)
	if err != nil {
		return func(t TenantRef) TenantMode { return ConfiguredMode(configured, t) }, err
	}
	return view.ModeFor, nil
}

// Alert tells the Governor about a tenant's token. Not running (a fresh
// deployment) is fine: it starts with nothing broken, and the batches and
// the health check tell it again.
func (c *Client) Alert(ctx context.Context, alert TokenAlert) {
	if c == nil || c.Temporal == nil {
		return
	}
	_ = c.Temporal.SignalWorkflow(ctx, WorkflowID, "", SignalTokenAlert, alert)
}
