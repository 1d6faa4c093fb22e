package limiter

import "time"

// Report is what one Graph API response said about a token's limits.
type Report struct {
	At           time.Time     // when the call was made
	UsagePercent int           // highest figure of X-App-Usage / X-Business-Use-Case-Usage; -1 when Meta sent none
	Throttled    bool          // Meta refused the call for a rate limit (codes 4, 17, 32, 613, 800xx)
	RegainAfter  time.Duration // Meta's estimated_time_to_regain_access, 0 when not given
}

// Policy adapts a bucket to Meta's reports. Meta counts every call made with
// the token — by us, and by other apps or users of the same token — and
// throttles at 100%; more calls while throttled extend the block.
type Policy struct {
	// MarginPercent is kept free below Meta's 100% for what we cannot see
	// (calls by others between our reports, rounding).
	MarginPercent int
	// BlockWithoutRegain is how long to stop after a throttle when Meta
	// gives no regain time (app throttles, code 4), in the bucket's time.
	BlockWithoutRegain time.Duration
	// NoisePercent: a gap this small between Meta's figure and ours is
	// rounding and timing (Meta counts a call we have not yet counted), not
	// someone else.
	NoisePercent int
}

// DefaultPolicy for a budget window: 5% margin, 2% noise, and a throttle
// without a regain time stops the token for a twelfth of its window (5
// minutes an hour).
func DefaultPolicy(window time.Duration) Policy {
	return Policy{MarginPercent: 5, BlockWithoutRegain: window / 12, NoisePercent: 2}
}

// Apply folds a report into the bucket.
//
// Usage: our own share of the budget is what the bucket granted in the
// window before the call; anything Meta reports above it is someone else's.
// The bucket's capacity becomes what is left after others' share and, when
// there are others, the margin, so it slows as soon as others use the token and speeds up again
// when their share falls. When Meta reports more than we can explain even
// without others, capacity drops to what we already used: no new permit
// until our old ones leave the window.
//
// Throttle: no permit until Meta's regain time (or BlockWithoutRegain).
func (p Policy) Apply(b *Bucket, r Report) {
	if r.Throttled {
		block := r.RegainAfter
		if block <= 0 {
			block = p.BlockWithoutRegain
		}
		if until := r.At.Add(block); until.After(b.BlockedUntil) {
			b.BlockedUntil = until
		}
	}
	if r.UsagePercent < 0 || b.Budget.Calls <= 0 {
		return
	}
	own := b.UsedAt(r.At) * 100 / b.Budget.Calls
	others := max(0, r.UsagePercent-own)
	if others <= p.NoisePercent {
		others = 0
	}
	b.CapacityPercent = 100
	if others > 0 {
		// Others' calls between our reports go unseen: keep a margin.
		b.CapacityPercent = min(100, max(1, 100-others-p.MarginPercent))
	}
	if r.Throttled && b.CapacityPercent > own {
		// Meta says we are over although our count says otherwise: trust Meta.
		b.CapacityPercent = max(1, own)
	}
}
