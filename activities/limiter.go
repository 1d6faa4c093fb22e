package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/limiter"
)

// ReserveInput asks for permits on a token.
type ReserveInput struct {
	TokenID string
	N       int
	Class   limiter.Class
	Reports []limiter.Report `json:",omitempty"` // what calls since the last message saw
}

var tokenIDKey = temporal.NewSearchAttributeKeyKeyword(limiter.TokenIDAttribute)

// ReservePermits reserves permits from the token's limiter workflow with
// Update-with-Start: the limiter starts on first use, with the budget the
// store configures for the token, and answers at once.
// The Graph activity calls it too, for more permits mid-chunk.
func (a *Activities) ReservePermits(ctx context.Context, in ReserveInput) (limiter.ReserveResponse, error) {
	var resp limiter.ReserveResponse
	release, err := a.reserving.acquire(ctx, in.TokenID)
	if err != nil {
		return resp, err
	}
	defer release()
	if a.Temporal == nil {
		return resp, temporal.NewNonRetryableApplicationError("activities have no Temporal client to reach the limiter", "Config", nil)
	}
	tok, err := a.Store.Token(ctx, in.TokenID)
	if err != nil {
		return resp, fmt.Errorf("reserve permits: %w", err)
	}
	start := a.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       limiter.WorkflowID(in.TokenID),
		TaskQueue:                a.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(tokenIDKey.ValueSet(in.TokenID)),
	}, limiter.WorkflowType, limiter.StartInput{
		TokenID:   in.TokenID,
		Budget:    limiter.BudgetSetting{Calls: tok.BudgetCalls, Window: tok.BudgetWindow},
		Speed:     a.speed(),
		RunLength: a.LimiterRunLength,
	})
	h, err := a.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   limiter.WorkflowID(in.TokenID),
			UpdateName:   limiter.UpdateReserve,
			Args:         []any{limiter.ReserveRequest{N: in.N, Class: in.Class, Reports: in.Reports}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return resp, fmt.Errorf("reserve %d permits on %s: %w", in.N, in.TokenID, err)
	}
	if err := h.Get(ctx, &resp); err != nil {
		return resp, fmt.Errorf("reserve %d permits on %s: %w", in.N, in.TokenID, err)
	}
	a.ReservationsAnswered.Add(1)
	return resp, nil
}

// report tells the token's limiter what the calls saw and which permits go
// back unused. A failure is logged, not returned: the verdicts stand, and
// the next report carries fresh usage.
func (a *Activities) report(ctx context.Context, tokenID string, r limiter.UsageReport) error {
	if a.Temporal == nil || (len(r.Reports) == 0 && len(r.Release) == 0) {
		return nil
	}
	return a.Temporal.SignalWorkflow(ctx, limiter.WorkflowID(tokenID), "", limiter.SignalReport, r)
}

func (a *Activities) speed() float64 {
	if a.Speed <= 0 {
		return 1
	}
	return a.Speed
}

// blocks remembers, within this worker process, tokens Meta has throttled,
// so every activity stops calling with such a token at once, before the
// limiter's answer to the report reaches the other callers.
type blocks struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (b *blocks) set(token string, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until = map[string]time.Time{}
	}
	if until.After(b.until[token]) {
		b.until[token] = until
	}
}

func (b *blocks) get(token string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.until[token]
}

// maxReservationsInFlight bounds concurrent Updates to one limiter from this
// worker: the server admits 10 in flight per workflow, and past about 8
// callers its throughput collapses.
const maxReservationsInFlight = 4

// gates holds one semaphore per token.
type gates struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (g *gates) acquire(ctx context.Context, token string) (release func(), err error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[string]chan struct{}{}
	}
	ch, ok := g.m[token]
	if !ok {
		ch = make(chan struct{}, maxReservationsInFlight)
		g.m[token] = ch
	}
	g.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
