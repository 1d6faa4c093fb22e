package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
)

// EnsureSearchAttributes creates the custom search attributes that are
// missing in the namespace; existing ones are left alone.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) (added []string, err error) {
	ops := c.OperatorService()
	existing, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enums.IndexedValueType{}
	for _, k := range SearchAttributeKeys {
		if _, ok := existing.GetCustomAttributes()[k.GetName()]; !ok {
			missing[k.GetName()] = enums.INDEXED_VALUE_TYPE_KEYWORD
			added = append(added, k.GetName())
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return nil, fmt.Errorf("add search attributes %v: %w", added, err)
	}
	return added, nil
}

// ScheduleConfig is what `starter setup` puts into the Schedule.
type ScheduleConfig struct {
	Interval   time.Duration
	Dispatcher DispatcherInput
}

// EnsureSchedule creates the Dispatcher's Schedule, or brings an existing one
// to the given interval and input. A run that would overlap a running one is
// skipped, and missed runs are caught up only within one interval: a backlog
// of Dispatcher runs after an outage would only claim what one run claims.
func EnsureSchedule(ctx context.Context, c client.Client, cfg ScheduleConfig) (created bool, err error) {
	action := &client.ScheduleWorkflowAction{
		ID:        ScheduleID,
		Workflow:  DispatcherWorkflow,
		Args:      []any{cfg.Dispatcher},
		TaskQueue: TaskQueue,
		// A Dispatcher run only claims and starts children: if it has not
		// finished well within an interval, something is wrong.
		WorkflowRunTimeout: max(5*time.Minute, 2*cfg.Interval),
	}
	return ensureSchedule(ctx, c, ScheduleID, cfg.Interval, action, "fires the verification Dispatcher; created by `starter setup`")
}

// ensureSchedule creates a Schedule firing action every interval, or brings
// an existing one to that interval and action. A run that would overlap a
// running one is skipped, and missed runs are caught up only within one
// interval.
func ensureSchedule(ctx context.Context, c client.Client, id string, every time.Duration, action *client.ScheduleWorkflowAction, note string) (created bool, err error) {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	catchup := max(every, 10*time.Second) // Temporal's minimum catch-up window is 10s
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:            id,
		Spec:          spec,
		Action:        action,
		Overlap:       enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: catchup,
		Note:          note,
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create schedule %s: %w", id, err)
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enums.SCHEDULE_OVERLAP_POLICY_SKIP
			s.Policy.CatchupWindow = catchup
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return false, fmt.Errorf("update schedule %s: %w", id, err)
	}
	return false, nil
}

// NewScheduleConfig derives the Schedule's interval and the Dispatcher's
// input from the engine configuration, applying the speed factor.
func NewScheduleConfig(cfg config.Config) ScheduleConfig {
	return ScheduleConfig{
		Interval: cfg.Scaled(cfg.Interval),
		Dispatcher: DispatcherInput{
			BatchSize:    cfg.BatchSize,
			BacklogSize:  cfg.BacklogBatchSize,
			LeaseTTL:     cfg.Scaled(cfg.LeaseTTL),
			ClaimHorizon: cfg.ClaimHorizon,
			Governor:     NewGovernorStart(cfg),
			Batch: func() BatchSettings {
				s := DefaultBatchSettings()
				s.RecheckDelay = cfg.RecheckDelay
				s.Mode = cfg.Mode
				return s.Scaled(cfg.Speed)
			}(),
		},
	}
}

// NewGovernorStart is the Governor's input from the engine configuration.
func NewGovernorStart(cfg config.Config) governor.Start {
	return governor.Start{Mode: governor.Mode(cfg.Mode), Thresholds: cfg.Thresholds(), Speed: cfg.Speed}
}

// NewAuditInput is the audit's input from the engine configuration: it
// audits approvals older than the grace delay.
func NewAuditInput(cfg config.Config) AuditInput {
	return AuditInput{MinAge: cfg.Scaled(cfg.RecheckDelay), Idle: max(time.Second, cfg.Scaled(cfg.Interval))}
}

// EnsureRunning starts the Governor and the audit unless they are running
// (a running one keeps its state: operators steer it by signals). It
// reports which it started.
func EnsureRunning(ctx context.Context, c client.Client, cfg config.Config) (started []string, err error) {
	for _, w := range []struct {
		id, typ string
		arg     any
	}{
		{governor.WorkflowID, governor.WorkflowType, NewGovernorStart(cfg)},
		{AuditWorkflowID, AuditWorkflow, NewAuditInput(cfg)},
	} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       w.id,
			TaskQueue:                TaskQueue,
			WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, w.typ, w.arg)
		if err != nil {
			return started, fmt.Errorf("start %s: %w", w.id, err)
		}
		if desc, err := c.DescribeWorkflowExecution(ctx, w.id, run.GetRunID()); err == nil &&
			desc.GetWorkflowExecutionInfo().GetHistoryLength() <= 3 {
			started = append(started, w.id)
		}
	}
	return started, nil
}

// EnsurePurgeSchedule creates, or brings up to date, the Schedule that
// purges stored evidence every hour (platform time) older than the
// configured retention.
func EnsurePurgeSchedule(ctx context.Context, c client.Client, cfg config.Config) (created bool, err error) {
	every := max(time.Second, cfg.Scaled(time.Hour))
	action := &client.ScheduleWorkflowAction{
		ID:                 EvidencePurgeScheduleID,
		Workflow:           EvidencePurgeWorkflow,
		Args:               []any{activities.PurgeInput{Retention: cfg.Scaled(cfg.EvidenceRetention)}},
		TaskQueue:          TaskQueue,
		WorkflowRunTimeout: max(time.Minute, every),
	}
	return ensureSchedule(ctx, c, EvidencePurgeScheduleID, every, action, "purges stored evidence past its retention; created by `starter setup`")
}

// EnsureTokenHealthSchedule creates, or brings up to date, the Schedule that
// checks every token's health (debug_token) every cfg.TokenHealthEvery,
// platform time: daily by default.
func EnsureTokenHealthSchedule(ctx context.Context, c client.Client, cfg config.Config) (created bool, err error) {
	every := max(time.Second, cfg.Scaled(cfg.TokenHealthEvery))
	action := &client.ScheduleWorkflowAction{
		ID:                 tokens.HealthScheduleID,
		Workflow:           tokens.HealthWorkflowType,
		Args:               []any{tokens.HealthInput{ExpiringWithin: cfg.TokenExpiringWithin, MaxWait: min(every, 10*time.Minute)}},
		TaskQueue:          TaskQueue,
		WorkflowRunTimeout: max(time.Minute, every),
	}
	return ensureSchedule(ctx, c, tokens.HealthScheduleID, every, action, "checks every Meta token's health with debug_token; created by `starter setup`")
}

// AppTokenBudget is the app token's budget when setup first registers it:
// its debug_token calls count in the app's platform rate limit.
var AppTokenBudget = store.Token{ID: store.AppTokenID, BudgetCalls: 200, BudgetWindow: "1h"}

// EnsureAppToken registers the app token (id "app": the worker builds its
// value from the app id and secret) so its limiter has a budget; an
// operator's budget on an existing row stays.
func EnsureAppToken(ctx context.Context, st store.Store) error {
	_, err := st.Token(ctx, store.AppTokenID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("app token: %w", err)
	}
	if err := st.UpsertToken(ctx, AppTokenBudget); err != nil {
		return fmt.Errorf("app token: %w", err)
	}
	return nil
}
