package limiter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Client is how one worker process's activities reach the limiters: it
// reserves permits (the reserve Update, sent with Update-with-Start so a
// limiter starts on first use), reports what calls saw, and remembers the
// tokens Meta has throttled. Activities spend permits through a Pacer
// (client.Pacer).
type Client struct {
	// Temporal reaches the limiter workflows; nil means calls are not paced
	// (tests of verification alone).
	Temporal  client.Client
	TaskQueue string // where a limiter is started
	// Speed is the time acceleration (config.Speed): budget windows and
	// Meta's regain times (simulated minutes) are divided by it.
	Speed float64
	// RunLength is passed to the limiters this client starts (see
	// StartInput.RunLength); 0 leaves continue-as-new to the server.
	RunLength int64
	// Budget is a token's configured budget (from the task store), for
	// starting its limiter.
	Budget func(ctx context.Context, tokenID string) (BudgetSetting, error)
	// OnCall, when set, is told of every paced Graph call: the token and
	// the call's error (nil when it succeeded). The worker counts them.
	OnCall func(tokenID string, err error)

	blocked   blocks // tokens Meta throttled, as seen by this process
	reserving gates  // reservations in flight per limiter

	// Answered counts the reservations this client got an answer to.
	Answered atomic.Int64
}

var tokenIDKey = temporal.NewSearchAttributeKeyKeyword(TokenIDAttribute)

// Reserve asks the token's limiter for permits and returns its answer at
// once: permits at their times, or none and when to ask again.
func (c *Client) Reserve(ctx context.Context, tokenID string, req ReserveRequest) (ReserveResponse, error) {
	var resp ReserveResponse
	if c.Temporal == nil {
		return resp, temporal.NewNonRetryableApplicationError("no Temporal client to reach the limiter", "Config", nil)
	}
	release, err := c.reserving.acquire(ctx, tokenID)
	if err != nil {
		return resp, err
	}
	defer release()
	budget, err := c.Budget(ctx, tokenID)
	if err != nil {
		return resp, fmt.Errorf("reserve permits: %w", err)
	}
	start := c.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       WorkflowID(tokenID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    temporal.NewSearchAttributes(tokenIDKey.ValueSet(tokenID)),
	}, WorkflowType, StartInput{TokenID: tokenID, Budget: budget, Speed: c.speed(), RunLength: c.RunLength})
	h, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   WorkflowID(tokenID),
			UpdateName:   UpdateReserve,
			Args:         []any{req},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return resp, fmt.Errorf("reserve %d permits on %s: %w", req.N, tokenID, err)
	}
	if err := h.Get(ctx, &resp); err != nil {
		return resp, fmt.Errorf("reserve %d permits on %s: %w", req.N, tokenID, err)
	}
	c.Answered.Add(1)
	return resp, nil
}

// Report tells the token's limiter what calls saw and which permits go
// back unused.
func (c *Client) Report(ctx context.Context, tokenID string, r UsageReport) error {
	if c.Temporal == nil || (len(r.Reports) == 0 && len(r.Release) == 0) {
		return nil
	}
	return c.Temporal.SignalWorkflow(ctx, WorkflowID(tokenID), "", SignalReport, r)
}

func (c *Client) speed() float64 {
	if c.Speed <= 0 {
		return 1
	}
	return c.Speed
}

// Wall turns a simulated duration (Meta's regain minutes) into wall time.
func (c *Client) Wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.speed())
}

// MetaTime turns a wall duration into Meta's (simulated) time.
func (c *Client) MetaTime(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.speed())
}

// ReserveInput asks for permits on a token (the ReservePermits activity).
type ReserveInput struct {
	TokenID string
	N       int
	Class   Class
	Reports []Report `json:",omitempty"` // what calls since the last message saw
}

// Activities is the limiter's one activity, for workflows that reserve
// permits themselves: Audit and TokenHealth runs started before their
// activities reserved their own ("permits-in-activity").
type Activities struct{ Client *Client }

// ReservePermits reserves permits from the token's limiter (Client.Reserve).
func (a *Activities) ReservePermits(ctx context.Context, in ReserveInput) (ReserveResponse, error) {
	return a.Client.Reserve(ctx, in.TokenID, ReserveRequest{N: in.N, Class: in.Class, Reports: in.Reports})
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
// process: the server admits 10 in flight per workflow, and past about 8
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
