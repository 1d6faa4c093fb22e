package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/limiter"
)

// errOutOfPermits: the chunk's permits are spent; the claim goes back to the
// workflow, which reserves more.
var errOutOfPermits = errors.New("out of permits")

// defaultThrottleBlock is how long this worker stops calling a token after a
// throttle without Meta's regain time (simulated time; the limiter's policy
// uses the same twelfth of an hour).
const defaultThrottleBlock = 5 * time.Minute

// pacer spends a chunk's permits: one per Graph call, never before the
// permit's time and never later than its guard after it (a late permit is
// skipped: a call then could crowd the window). It collects what each call
// saw for the limiter's report. With no permits it does not pace (callers
// that do not use the limiter, such as tests of verification alone).
type pacer struct {
	ctx     context.Context
	a       *Activities
	tokenID string
	permits []limiter.Permit
	guard   time.Duration
	paced   bool
	next    int
	wasted  int
	// claimsLeft is how many claims of the chunk still need checking: more
	// permits are asked for no more than that, so few go back unused (a
	// released permit leaves a gap later reservations do not fill).
	claimsLeft int
	reports    []limiter.Report
	class      limiter.Class // of the permits reserveMore asks for
}

func (a *Activities) newPacer(ctx context.Context, tokenID string, permits []limiter.Permit, guard time.Duration) *pacer {
	return &pacer{ctx: ctx, a: a, tokenID: tokenID, permits: permits, guard: guard, paced: permits != nil}
}

// before waits for the next usable permit.
func (p *pacer) before() error {
	now := time.Now()
	if until := p.a.blocked.get(p.tokenID); until.After(now) {
		return &graph.Error{Class: graph.Throttled, Op: "limiter", Message: "token throttled by Meta, seen by an earlier call", RetryAfter: until.Sub(now)}
	}
	if !p.paced {
		return nil
	}
	for {
		if p.next == len(p.permits) && !p.reserveMore() {
			return errOutOfPermits
		}
		permit := p.permits[p.next]
		p.next++
		if err := sleepUntil(p.ctx, permit.At); err != nil {
			return err
		}
		if time.Now().After(permit.At.Add(p.guard)) {
			p.wasted++
			continue
		}
		return nil
	}
}

// morePermits is how many permits a chunk asks for when a claim needs more
// pages than the chunk reserved.
const morePermits = 5

// reserveMore asks the limiter for a few more permits, when they come soon
// enough for this activity to use them before its deadline.
func (p *pacer) reserveMore() bool {
	if p.a.Temporal == nil {
		return false
	}
	deadline, hasDeadline := p.ctx.Deadline()
	for {
		n := min(morePermits, max(1, p.claimsLeft))
		resp, err := p.a.ReservePermits(p.ctx, ReserveInput{TokenID: p.tokenID, N: n, Class: p.class, Reports: p.reports})
		if err != nil || resp.Paused {
			return false
		}
		p.reports = nil // delivered with the reservation
		if len(resp.Permits) > 0 {
			p.permits = append(p.permits, resp.Permits...)
			// Too late for this activity: the permits go back with the rest.
			return !hasDeadline || resp.Permits[0].At.Before(deadline.Add(-time.Minute/4))
		}
		if p.class == limiter.Audit {
			return false // no spare permit now: the audit comes back later
		}
		retry := resp.RetryAt
		if hasDeadline && retry.After(deadline.Add(-time.Minute/4)) {
			return false
		}
		if err := sleepUntil(p.ctx, retry); err != nil {
			return false
		}
	}
}

// after records what a call saw; a throttle stops every caller of the token
// in this worker until Meta's regain time.
func (p *pacer) after(usage graph.Usage, err error) {
	p.a.graphCalled(p.tokenID, err)
	r := limiter.Report{At: time.Now(), UsagePercent: -1}
	if usage.Known() {
		r.UsagePercent = usage.MaxPercent()
	}
	var ge *graph.Error
	if errors.As(err, &ge) && ge.Class == graph.Throttled {
		// Meta's regain time is in simulated minutes: from here on, the
		// error, the deferral and the limiter all see wall time.
		ge.RetryAfter = p.a.wall(ge.RetryAfter)
		r.Throttled = true
		r.RegainAfter = ge.RetryAfter
		block := r.RegainAfter
		if block <= 0 {
			block = p.a.wall(defaultThrottleBlock)
		}
		p.a.blocked.set(p.tokenID, r.At.Add(block))
	}
	if r.UsagePercent >= 0 || r.Throttled {
		p.reports = append(p.reports, r)
	}
}

// unused lists the permits not spent, to give back.
func (p *pacer) unused() []int64 {
	var seqs []int64
	for _, pm := range p.permits[p.next:] {
		seqs = append(seqs, pm.Seq)
	}
	return seqs
}

// sleepUntil waits, heartbeating, until t or the context ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	for {
		wait := time.Until(t)
		if wait <= 0 {
			return nil
		}
		timer := time.NewTimer(min(wait, 10*time.Second))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx)
			}
		}
	}
}

// wall turns a simulated duration (Meta's regain minutes) into wall time.
func (a *Activities) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) / a.speed())
}

// metaTime turns a wall duration into Meta's (simulated) time.
func (a *Activities) metaTime(d time.Duration) time.Duration {
	return time.Duration(float64(d) * a.speed())
}
