// Package limiter is the per-token call budget: no Graph API call is made
// without a permit from its token's limiter.
//
//   - bucket.go and policy.go are the pure core (no Temporal imports): a
//     rolling-window bucket of permits and the policy that adapts it to what
//     Meta reports.
//   - contract.go names the workflow and its messages.
//   - workflow.go is the Limiter workflow (id `limiter/<token-id>`), which
//     holds one Bucket per token as durable state.
//   - client.go and pacer.go are what a Graph activity uses: Client reserves
//     permits (an Update-with-Start) and reports usage; a Pacer spends them,
//     one per call, reserving more as the activity goes.
//
// A permit is a time at which one call may be made. Reserving never blocks:
// it hands out the earliest times that keep every rolling window within the
// budget, and the caller sleeps until its time.
package limiter

import (
	"fmt"
	"slices"
	"time"
)

// Class orders claims on the budget: audit work only gets permits that
// verification leaves unused.
type Class int

const (
	Verify Class = iota
	Audit
)

func (c Class) String() string {
	if c == Audit {
		return "audit"
	}
	return "verify"
}

// Budget is calls per rolling window: 1 hour for app and user tokens, 24
// hours for Business Use Case (Page and Instagram account) tokens.
type Budget struct {
	Calls  int
	Window time.Duration
}

// DefaultBudget is the user's plan: 200 calls an hour.
var DefaultBudget = Budget{Calls: 200, Window: time.Hour}

// ParseWindow reads the "1h" or "24h" of a token's configuration.
func ParseWindow(s string) (time.Duration, error) {
	switch s {
	case "1h":
		return time.Hour, nil
	case "24h":
		return 24 * time.Hour, nil
	}
	return 0, fmt.Errorf(`budget window must be "1h" or "24h", got %q`, s)
}

// Permit is one reserved call: Seq identifies it, At is when it may be used.
type Permit struct {
	Seq   int64
	At    time.Time
	Class Class
}

// Bucket is one token's permits. The zero value is unusable; set Budget.
//
// Invariant: permits are sorted by At, and no interval of length
// Budget.Window+Guard holds more than Budget.Calls permits. Guard covers a
// call made a little after its permit's time (the caller wakes up late):
// calls made within Guard of their permits then never put more than
// Budget.Calls calls into any window of Budget.Window.
type Bucket struct {
	Budget       Budget
	Guard        time.Duration
	Permits      []Permit  // granted, oldest first, pruned once out of every window
	BlockedUntil time.Time // no permit before this (Meta throttled the token, or the policy stopped it)
	Paused       bool      // an operator paused the token: no new permits
	// Horizon bounds how far ahead verification permits are granted (at
	// least one is always granted): when the policy slows the token, few
	// permits at the old pace are still out. 0 means no bound.
	Horizon time.Duration
	// CapacityPercent is the share of Budget.Calls this token may use (the
	// policy lowers it when others use the same token); 0 means 100.
	CapacityPercent int
	LastSeq         int64     // the Seq of the last permit granted
	NextRetry       time.Time // the earliest time Refused sends the next caller back
}

// Limit is the number of permits allowed in a window now.
func (b *Bucket) Limit() int {
	pct := b.CapacityPercent
	if pct <= 0 || pct > 100 {
		pct = 100
	}
	return max(1, b.Budget.Calls*pct/100)
}

func (b *Bucket) span() time.Duration { return b.Budget.Window + b.Guard }

// Prune drops permits that no window starting after now-span can hold.
func (b *Bucket) Prune(now time.Time) {
	cut := now.Add(-b.span())
	i := 0
	for i < len(b.Permits) && !b.Permits[i].At.After(cut) {
		i++
	}
	b.Permits = slices.Delete(b.Permits, 0, i)
}

// UsedAt counts permits in the window ending at t: (t-Window, t].
func (b *Bucket) UsedAt(t time.Time) int {
	n := 0
	for _, p := range b.Permits {
		if p.At.After(t.Add(-b.Budget.Window)) && !p.At.After(t) {
			n++
		}
	}
	return n
}

// Queued counts permits granted for later than now, by class.
func (b *Bucket) Queued(now time.Time) map[Class]int {
	q := map[Class]int{}
	for _, p := range b.Permits {
		if p.At.After(now) {
			q[p.Class]++
		}
	}
	return q
}

// NextFree is the earliest time a verification permit could be granted.
func (b *Bucket) NextFree(now time.Time) time.Time {
	return b.earliest(now, b.Limit())
}

// Spacing is the even pace of permits: the window over the limit. Spreading
// permits instead of granting a window's budget in one burst keeps Meta's
// usage smooth, and lets a slowdown take effect on the next permits.
func (b *Bucket) Spacing() time.Duration {
	return b.Budget.Window / time.Duration(b.Limit())
}

// earliest is the first time ≥ now a permit can be appended without
// breaking the invariant for a window limit.
func (b *Bucket) earliest(now time.Time, limit int) time.Time {
	t := now
	if b.BlockedUntil.After(t) {
		t = b.BlockedUntil
	}
	if n := len(b.Permits); n > 0 {
		// First come, first served, at an even pace.
		if next := b.Permits[n-1].At.Add(b.Budget.Window / time.Duration(limit)); next.After(t) {
			t = next
		}
		if n >= limit {
			// The permit limit places back must have left the window.
			if free := b.Permits[n-limit].At.Add(b.span()); free.After(t) {
				t = free
			}
		}
	}
	return t
}

// Reserve grants up to n permits of a class at the earliest times the budget
// allows and returns them, in order.
//
// Verification gets up to n, queued into the future but no further than
// Horizon ahead; when nothing is outstanding it gets one permit however far
// off (after a throttle, say). Permits out at any time are thus bounded by
// the Horizon, whatever the number of callers. Audit
// gets only permits usable at once (within Guard of now) that no waiting
// verification permit is ahead of: it uses what verification leaves unused
// and never delays it. A paused bucket grants nothing.
func (b *Bucket) Reserve(now time.Time, n int, class Class) []Permit {
	b.Prune(now)
	if b.Paused || n <= 0 {
		return nil
	}
	limit := b.Limit()
	if class == Audit && b.Queued(now)[Verify] > 0 {
		return nil
	}
	granted := make([]Permit, 0, n)
	for range n {
		t := b.earliest(now, limit)
		if class == Audit && t.After(now.Add(b.Guard)) {
			break
		}
		if class == Verify && b.Horizon > 0 && t.After(now.Add(b.Horizon)) && (len(granted) > 0 || b.hasFuture(now)) {
			break
		}
		b.LastSeq++
		p := Permit{Seq: b.LastSeq, At: t, Class: class}
		b.Permits = append(b.Permits, p)
		granted = append(granted, p)
	}
	return granted
}

// hasFuture reports whether a permit is granted for later than now.
func (b *Bucket) hasFuture(now time.Time) bool {
	return len(b.Permits) > 0 && b.Permits[len(b.Permits)-1].At.After(now)
}

// RetryAt is when a verification reservation would get a permit again, for
// a caller that got none.
func (b *Bucket) RetryAt(now time.Time) time.Time {
	t := b.NextFree(now).Add(-b.Horizon)
	if t.Before(now) {
		return now
	}
	return t
}

// Refused tells a verification caller that got no permit when to come back.
// Callers are sent back one after another, each after the room its n permits
// take, so they do not all return at the same moment to find the same few
// permits (and crowd the limiter with Updates).
func (b *Bucket) Refused(now time.Time, n int) time.Time {
	t := b.RetryAt(now)
	if b.NextRetry.After(t) {
		t = b.NextRetry
	}
	b.NextRetry = t.Add(b.Spacing() * time.Duration(max(1, n)))
	return t
}

// Release gives back permits not yet due that the caller will not use (its
// work ended early or failed). Permits already due stay spent: a call may
// have been made with them. It returns how many it released.
func (b *Bucket) Release(now time.Time, seqs []int64) int {
	before := len(b.Permits)
	b.Permits = slices.DeleteFunc(b.Permits, func(p Permit) bool {
		return p.At.After(now) && slices.Contains(seqs, p.Seq)
	})
	return before - len(b.Permits)
}
