// Package engine wires one worker process: it builds every activity from
// the process's dependencies and registers every workflow and activity
// under its fixed name. The worker binary, the bench, the chaos suite and
// the system tests all start the engine through it.
package engine

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/internal/vault"
	"github.com/socialproof/verifier/limiter"
	"github.com/socialproof/verifier/workflows"
)

// Deps are what the engine needs from its process.
type Deps struct {
	Store store.Store
	Graph *graph.Client
	// Temporal reaches the limiters and the Governor; nil in tests of
	// activities alone (calls are then not paced).
	Temporal        client.Client
	Vault           *vault.Vault // nil: only tokens known by reference work
	PlatformTokenID string
	// Speed is the time acceleration (config.Speed).
	Speed float64
	// UserRiskTTL (wall time): see activities.Activities.
	UserRiskTTL time.Duration
	// LimiterRunLength is passed to the limiters this worker starts (tests
	// force continue-as-new with it); 0 leaves it to the server.
	LimiterRunLength int64
	// OnGraphCall, when set, is told of every Graph call: the token and
	// the call's error (nil when it succeeded). The worker counts them.
	OnGraphCall func(tokenID string, err error)
	// Now is the clock for leases and recorded times; nil means time.Now.
	Now func() time.Time
}

// Engine is one process's activities, and the clients they share.
type Engine struct {
	Activities *activities.Activities
	Tokens     *tokens.Activities
	Limiter    *limiter.Client
	Governor   *governor.Client
	// Connector connects tenants' tokens for the platform API; it is not an
	// activity (it holds a token's value).
	Connector *tokens.Connector
}

// New builds the engine from its dependencies.
func New(d Deps) *Engine {
	lim := &limiter.Client{
		Temporal: d.Temporal, TaskQueue: workflows.TaskQueue, Speed: d.Speed, RunLength: d.LimiterRunLength,
		Budget: func(ctx context.Context, tokenID string) (limiter.BudgetSetting, error) {
			tok, err := d.Store.Token(ctx, tokenID)
			return limiter.BudgetSetting{Calls: tok.BudgetCalls, Window: tok.BudgetWindow}, err
		},
		OnCall: d.OnGraphCall,
	}
	gov := &governor.Client{Temporal: d.Temporal, TaskQueue: workflows.TaskQueue}
	sessions := &tokens.Sessions{Store: d.Store, Graph: d.Graph, Vault: d.Vault, PlatformTokenID: d.PlatformTokenID, OnCall: d.OnGraphCall, Now: d.Now}
	return &Engine{
		Activities: &activities.Activities{Store: d.Store, Tokens: sessions, Limiter: lim, Governor: gov, UserRiskTTL: d.UserRiskTTL, Now: d.Now},
		Tokens:     &tokens.Activities{Sessions: sessions, Limiter: lim},
		Limiter:    lim,
		Governor:   gov,
		Connector:  &tokens.Connector{Sessions: sessions, Limiter: lim, Governor: gov},
	}
}

// Register adds every workflow and activity to a worker, under the names
// recorded histories use.
func (e *Engine) Register(w worker.Registry) {
	RegisterWorkflows(w)
	w.RegisterActivity(e.Activities)
	w.RegisterActivity(e.Tokens)
	w.RegisterActivity(&limiter.Activities{Client: e.Limiter})
}

// RegisterWorkflows adds every workflow under its type name (the replayer
// of recorded histories uses it too).
func RegisterWorkflows(w interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}) {
	w.RegisterWorkflowWithOptions(workflows.Dispatcher, workflow.RegisterOptions{Name: workflows.DispatcherWorkflow})
	w.RegisterWorkflowWithOptions(workflows.TenantBatch, workflow.RegisterOptions{Name: workflows.TenantBatchWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Audit, workflow.RegisterOptions{Name: workflows.AuditWorkflow})
	w.RegisterWorkflowWithOptions(workflows.EvidencePurge, workflow.RegisterOptions{Name: workflows.EvidencePurgeWorkflow})
	w.RegisterWorkflowWithOptions(limiter.Workflow, workflow.RegisterOptions{Name: limiter.WorkflowType})
	w.RegisterWorkflowWithOptions(governor.Workflow, workflow.RegisterOptions{Name: governor.WorkflowType})
	w.RegisterWorkflowWithOptions(tokens.HealthWorkflow, workflow.RegisterOptions{Name: tokens.HealthWorkflowType})
}
