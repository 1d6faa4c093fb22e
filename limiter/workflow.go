package limiter

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

type tokenLimiter struct {
	in           StartInput
	bucket       Bucket
	policy       Policy
	lastReport   *Report
	reservations int64
}

func newTokenLimiter(in StartInput) (*tokenLimiter, error) {
	l := &tokenLimiter{in: in}
	if c := in.Carried; c != nil {
		l.bucket, l.lastReport, l.reservations = c.Bucket, c.LastReport, c.Reservations
	}
	// The budget (and what derives from it) comes from the input, which
	// carries the latest set-budget across continue-as-new.
	if err := l.setBudget(in.Budget); err != nil {
		return nil, err
	}
	return l, nil
}

// setBudget applies a budget; windows are divided by the speed factor.
func (l *tokenLimiter) setBudget(b BudgetSetting) error {
	window, err := ParseWindow(b.Window)
	if err != nil {
		return err
	}
	if b.Calls <= 0 {
		return fmt.Errorf("budget calls must be positive, got %d", b.Calls)
	}
	speed := l.in.Speed
	if speed <= 0 {
		speed = 1
	}
	wall := time.Duration(float64(window) / speed)
	l.in.Budget = b
	l.bucket.Budget = Budget{Calls: b.Calls, Window: wall}
	// A call may be made up to 1% of the window after its permit's time.
	l.bucket.Guard = wall / 100
	// Permits are out at most a twentieth of the window ahead, so a slowdown
	// takes hold within that, however many callers there are.
	l.bucket.Horizon = wall / 20
	l.policy = DefaultPolicy(wall)
	return nil
}

func (l *tokenLimiter) state(now time.Time) State {
	q := l.bucket.Queued(now)
	return State{
		TokenID: l.in.TokenID, Budget: l.in.Budget, Speed: l.in.Speed, WindowWall: l.bucket.Budget.Window,
		CapacityPercent: max(l.bucket.CapacityPercent, 0), UsedInWindow: l.bucket.UsedAt(now),
		QueuedVerify: q[Verify], QueuedAudit: q[Audit],
		NextFree: l.bucket.NextFree(now), BlockedUntil: l.bucket.BlockedUntil, Paused: l.bucket.Paused,
		LastReport: l.lastReport, Reservations: l.reservations,
	}
}

func (l *tokenLimiter) report(r UsageReport, now time.Time) {
	for _, rep := range r.Reports {
		l.policy.Apply(&l.bucket, rep)
		l.lastReport = &rep
	}
	l.bucket.Release(now, r.Release)
}

// Workflow is the Limiter (type WorkflowType, id `limiter/<token-id>`): one
// token's budget, run until continue-as-new. Callers reserve permits with
// the reserve Update (Client.Reserve) and report what their calls saw;
// operators steer it with set-budget, pause and resume.
func Workflow(ctx workflow.Context, in StartInput) error {
	l, err := newTokenLimiter(in)
	if err != nil {
		return err
	}
	log := workflow.GetLogger(ctx)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) {
		return l.state(workflow.Now(ctx)), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReserve,
		func(ctx workflow.Context, req ReserveRequest) (ReserveResponse, error) {
			now := workflow.Now(ctx)
			l.report(UsageReport{Reports: req.Reports}, now)
			permits := l.bucket.Reserve(now, req.N, req.Class)
			l.reservations++
			var retryAt time.Time
			switch {
			case len(permits) > 0:
			case req.Class == Audit:
				// Audit waits for spare permits; it takes no place in the
				// queue of refused verification callers.
				retryAt = now.Add(l.bucket.Spacing())
			default:
				retryAt = l.bucket.Refused(now, req.N)
			}
			return ReserveResponse{Permits: permits, Guard: l.bucket.Guard, Spacing: l.bucket.Spacing(), RetryAt: retryAt, Paused: l.bucket.Paused, BlockedUntil: l.bucket.BlockedUntil}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ReserveRequest) error {
			if req.N <= 0 || req.N > MaxPermitsPerReservation {
				return fmt.Errorf("reserve 1..%d permits, not %d", MaxPermitsPerReservation, req.N)
			}
			if req.Class != Verify && req.Class != Audit {
				return errors.New("unknown class")
			}
			return nil
		}},
	); err != nil {
		return err
	}

	reportCh := workflow.GetSignalChannel(ctx, SignalReport)
	budgetCh := workflow.GetSignalChannel(ctx, SignalSetBudget)
	pauseCh := workflow.GetSignalChannel(ctx, SignalPause)
	resumeCh := workflow.GetSignalChannel(ctx, SignalResume)
	drain := func() (changed bool) {
		for {
			var r UsageReport
			var b BudgetSetting
			switch {
			case reportCh.ReceiveAsync(&r):
				l.report(r, workflow.Now(ctx))
			case budgetCh.ReceiveAsync(&b):
				if err := l.setBudget(b); err != nil {
					log.Error("set-budget refused", "TokenID", l.in.TokenID, "error", err)
				} else {
					log.Info("budget set", "TokenID", l.in.TokenID, "calls", b.Calls, "window", b.Window)
				}
			case pauseCh.ReceiveAsync(nil):
				l.bucket.Paused = true
			case resumeCh.ReceiveAsync(nil):
				l.bucket.Paused = false
			default:
				return changed
			}
			changed = true
		}
	}
	upsertMemo := func() {
		if err := workflow.UpsertMemo(ctx, map[string]any{"state": l.state(workflow.Now(ctx))}); err != nil {
			log.Warn("memo not updated", "error", err)
		}
	}
	upsertMemo()
	memoAt := l.reservations
	runStart := l.reservations
	continueAsNew := func() bool {
		return workflow.GetInfo(ctx).GetContinueAsNewSuggested() ||
			(in.RunLength > 0 && l.reservations-runStart >= in.RunLength)
	}
	for {
		err := workflow.Await(ctx, func() bool {
			return reportCh.Len() > 0 || budgetCh.Len() > 0 || pauseCh.Len() > 0 || resumeCh.Len() > 0 ||
				l.reservations >= memoAt+50 || continueAsNew()
		})
		if err != nil {
			return err
		}
		if drain() || l.reservations >= memoAt+50 {
			upsertMemo()
			memoAt = l.reservations
		}
		if continueAsNew() {
			// Let running Update handlers finish and take in every signal
			// already delivered, so nothing is lost across the new run.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			drain()
			l.bucket.Prune(workflow.Now(ctx))
			next := l.in
			next.Carried = &Carried{Bucket: l.bucket, LastReport: l.lastReport, Reservations: l.reservations}
			return workflow.NewContinueAsNewError(ctx, WorkflowType, next)
		}
	}
}
