package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/socialproof/verifier/internal/graph"
)

// ErrOutOfPermits: the limiter has no permit to give this activity soon
// enough (see Pacer.Before). The claims not yet checked go back to the
// workflow, which waits until Pacer.RetryAt (durably, keeping their lease)
// and runs them again.
var ErrOutOfPermits = errors.New("out of permits")

// defaultThrottleBlock is how long this process stops calling a token after
// a throttle without Meta's regain time (simulated time; Policy uses the
// same twelfth of an hour).
const defaultThrottleBlock = 5 * time.Minute

// morePermits is how many permits a pacer asks for at a time once its first
// ones are spent (a target with more pages than expected).
const morePermits = 5

// deadlineMargin is the time an activity keeps, before its deadline, to
// record what it found: permits due later than that are not waited for.
const deadlineMargin = 15 * time.Second

// Pacer spends one token's permits for one activity: one permit per Graph
// call, never before the permit's time and never later than its guard
// after it (a late permit is skipped: a call then could crowd the window).
// It is the activity's only negotiation with the limiter: it reserves as
// the calls need (Want says how many are still expected), carrying what
// earlier calls saw, and gives back what it did not use (Close).
//
// When the limiter has nothing to give, a pacer that has made no call yet
// stops at once (ErrOutOfPermits, RetryAt): nothing is lost by handing the
// claims back, and the workflow waits durably. Once it has called it waits
// in the activity, as long as its deadline allows, so a paged read is not
// broken off. Audit permits are never waited for: the audit only uses what
// verification leaves.
type Pacer struct {
	ctx     context.Context
	c       *Client
	tokenID string
	class   Class
	paced   bool
	patient bool // waits even for its first permits (no workflow to wait for it)

	permits []Permit
	guard   time.Duration
	next    int
	want    int
	called  int
	wasted  int
	out     bool  // no more permits for this activity: ErrOutOfPermits
	failed  error // the limiter could not be reached: every later call fails with it
	retryAt time.Time
	paused  bool
	reports []Report
}

// Pacer returns a pacer for the calls of one activity on one token. Without
// a Temporal client calls are not paced (tests of verification alone), but
// throttles are still honoured.
func (c *Client) Pacer(ctx context.Context, tokenID string, class Class) *Pacer {
	return &Pacer{ctx: ctx, c: c, tokenID: tokenID, class: class, paced: c != nil && c.Temporal != nil, want: 1}
}

// Patient makes the pacer wait for permits from the start, for callers that
// have no workflow to wait for them (connecting a token through the API).
func (p *Pacer) Patient() *Pacer {
	p.patient = true
	return p
}

// Want tells the pacer how many calls are still expected: the next
// reservation asks for that many (a few at a time once the first are
// spent), so few permits go back unused.
func (p *Pacer) Want(calls int) { p.want = max(1, calls) }

// Reserve gets the activity's first permits now, before it does the work
// that leads to its calls, so a chunk the limiter has nothing for stops
// early: ErrOutOfPermits (then RetryAt, or Paused), or the limiter's error.
// Unpaced, or with permits in hand, it does nothing.
func (p *Pacer) Reserve() error {
	if !p.paced {
		return nil
	}
	return p.ready()
}

// ready makes sure a permit is in hand, reserving more when none is; once
// the pacer is out of permits or the limiter failed, it says so for good.
func (p *Pacer) ready() error {
	switch {
	case p.failed != nil:
		return p.failed
	case p.out:
		return ErrOutOfPermits
	case p.next < len(p.permits):
		return nil
	}
	return p.reserve()
}

// Before waits for the next usable permit. It returns ErrOutOfPermits when
// the limiter gives none soon enough (then RetryAt, or Paused), a throttle
// *graph.Error when Meta throttled the token (seen by any call in this
// process), or the context's error.
func (p *Pacer) Before() error {
	now := time.Now()
	if p.c != nil {
		if until := p.c.blocked.get(p.tokenID); until.After(now) {
			return &graph.Error{Class: graph.Throttled, Op: "limiter", Message: "token throttled by Meta, seen by an earlier call", RetryAfter: until.Sub(now)}
		}
	}
	if !p.paced {
		return nil
	}
	for {
		if err := p.ready(); err != nil {
			return err
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

// reserve asks the limiter for more permits. It returns nil when permits
// usable in time were added, ErrOutOfPermits (setting out) when there are
// none soon enough, or the limiter's error (setting failed: calls stop, and
// their claims are tried again later).
func (p *Pacer) reserve() error {
	deadline, hasDeadline := p.ctx.Deadline()
	tooLate := func(t time.Time) bool { return hasDeadline && t.After(deadline.Add(-deadlineMargin)) }
	for {
		n := p.want
		if len(p.permits) > 0 {
			n = min(morePermits, p.want)
		}
		n = min(max(1, n), MaxPermitsPerReservation)
		resp, err := p.c.Reserve(p.ctx, p.tokenID, ReserveRequest{N: n, Class: p.class, Reports: p.reports})
		if err != nil {
			p.failed = fmt.Errorf("limiter: %w", err)
			return p.failed
		}
		p.reports = nil // delivered with the reservation
		if resp.Paused {
			p.out, p.paused = true, true
			return ErrOutOfPermits
		}
		if len(resp.Permits) > 0 {
			p.guard = resp.Guard
			p.permits = append(p.permits, resp.Permits...)
			if first := resp.Permits[0].At; tooLate(first) {
				// Too late for this activity: they go back with Close, and
				// the workflow comes back when they would have been due.
				p.out, p.retryAt = true, first
				return ErrOutOfPermits
			}
			return nil
		}
		retry := resp.RetryAt
		if soonest := time.Now().Add(resp.Spacing); retry.Before(soonest) {
			retry = soonest
		}
		if p.class == Audit || (p.called == 0 && !p.patient) || tooLate(retry) {
			p.out, p.retryAt = true, retry
			return ErrOutOfPermits
		}
		if err := sleepUntil(p.ctx, retry); err != nil {
			return err
		}
	}
}

// After records what a call saw, for the limiter's next message; a throttle
// stops every caller of the token in this process until Meta's regain time
// (the error's RetryAfter is turned into wall time).
func (p *Pacer) After(usage graph.Usage, err error) {
	p.called++
	if p.c == nil {
		return
	}
	if p.c.OnCall != nil {
		p.c.OnCall(p.tokenID, err)
	}
	r := Report{At: time.Now(), UsagePercent: -1}
	if usage.Known() {
		r.UsagePercent = usage.MaxPercent()
	}
	var ge *graph.Error
	if errors.As(err, &ge) && ge.Class == graph.Throttled {
		// Meta's regain time is in simulated minutes: from here on, the
		// error, the deferral and the limiter all see wall time.
		ge.RetryAfter = p.c.Wall(ge.RetryAfter)
		r.Throttled = true
		r.RegainAfter = ge.RetryAfter
		block := r.RegainAfter
		if block <= 0 {
			block = p.c.Wall(defaultThrottleBlock)
		}
		p.c.blocked.set(p.tokenID, r.At.Add(block))
	}
	if r.UsagePercent >= 0 || r.Throttled {
		p.reports = append(p.reports, r)
	}
}

// Close tells the limiter what the calls saw and gives back the permits
// not used. Call it once the activity's calls are over, even when it
// fails (with a context that outlives the activity's).
func (p *Pacer) Close(ctx context.Context) error {
	if !p.paced {
		return nil
	}
	var release []int64
	for _, pm := range p.permits[p.next:] {
		release = append(release, pm.Seq)
	}
	return p.c.Report(ctx, p.tokenID, UsageReport{Reports: p.reports, Release: release})
}

// RetryAt is, after ErrOutOfPermits, when permits may be had again (zero
// when the limiter is paused).
func (p *Pacer) RetryAt() time.Time { return p.retryAt }

// Paused reports whether the limiter refused permits because an operator
// paused it.
func (p *Pacer) Paused() bool { return p.paused }

// Wasted counts permits skipped because the call would have come too late.
func (p *Pacer) Wasted() int { return p.wasted }

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
