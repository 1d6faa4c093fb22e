package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"

	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// VerifyInput is a chunk of claims to check with one token.
type VerifyInput struct {
	TenantID string
	TokenID  string
	ClaimIDs []int64
	// LeaseOwner holds the claims' lease (the batch keeps it): only it may
	// quarantine them. Empty (the audit checks decided claims): poison
	// claims come back Deferred as permanent failures.
	LeaseOwner string
	// Final: this is the re-check after the grace delay, so a claim still
	// without evidence is rejected. On the first check it is reported Absent.
	Final bool
	// Class of the permits the chunk reserves (audit: only spare ones).
	Class limiter.Class `json:",omitempty"`
	// Grace is how long after a claim's submission a read must be made for
	// its absence to count on the Final re-check or an audit (Meta's data can
	// lag behind the user): stored coverage older than that is read again.
	Grace time.Duration `json:",omitempty"`
	// StoredOnly: decide from stored evidence (webhooks, earlier reads) and
	// make no call; what it does not prove comes back Absent. A first check
	// needs no read: the re-check after the grace delay reads once for all.
	// With Final, stored coverage read after a claim's grace delay rejects
	// it; a claim neither proven nor covered still comes back Absent.
	StoredOnly bool `json:",omitempty"`
	// Audit: the claims are provisional approvals to audit. Proof found
	// confirms one (store.MarkAudited); none revokes it with the evidence of
	// the read, and its user becomes risky.
	Audit bool `json:",omitempty"`
}

// VerifyResult reports a chunk. Verified and rejected claims are already
// recorded in the store; the rest come back for the workflow to decide on.
type VerifyResult struct {
	Verified int
	Rejected int
	Absent   []int64  // no evidence yet: re-check after the grace delay
	Deferred []Failed // could not be checked now, for a reason that is not the claim's fault
	// NeedPermits: the token's limiter had no permit for these claims soon
	// enough; ask again at RetryAt (zero: at once), unless Paused.
	NeedPermits []int64
	RetryAt     time.Time `json:",omitzero"`
	Paused      bool      `json:",omitempty"` // an operator paused the token's limiter
	Calls       int       // Graph API calls made
	Wasted      int       // permits skipped because the call would have been too late
	Confirmed   int       // audit: provisional approvals proven
	Revoked     int       // audit: provisional approvals revoked
	Groups      int       // target edges read or looked up (one read proves every claim on a target)
	ByWebhook   int       // verified by webhook evidence, without a call
	Usage       graph.Usage
	// Quarantined: poison claims, whose check (or the read of their target)
	// panicked. They are quarantined in the store with the panic as their
	// reason, out of the queue until an operator releases them: the
	// workflow has nothing more to do with them.
	Quarantined []Poisoned `json:",omitempty"`
}

// Failed is a claim whose check failed, with the class of the failure.
type Failed struct {
	ClaimID    int64
	Class      graph.Class
	Reason     string
	RetryAfter time.Duration `json:",omitempty"`
}

// Evidence is what a verdict rests on, stored as JSON beside it.
type Evidence struct {
	Endpoint string           `json:"endpoint"`
	Object   string           `json:"object"`
	Match    *evidence.Action `json:"match,omitempty"`
	Pages    int              `json:"pages,omitempty"`
	Scanned  int              `json:"scanned,omitempty"`
	Reason   string           `json:"reason,omitempty"` // why nothing proved the claim
	Source   string           `json:"source,omitempty"` // "stored graph", "stored webhook", "stored coverage": no call was made for this claim
}

func (e Evidence) json() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// VerifyClaims checks a chunk of claims against evidence and records what
// it decides, in one transaction (store.RecordOutcome): verdicts, the
// evidence its reads saw, poison claims, audit outcomes and risky users. It
// works one of three ways:
//
//   - StoredOnly (stored.go): from stored evidence alone, no call;
//   - Audit (audit.go): provisional approvals read again with spare permits;
//   - otherwise (reads.go): stored evidence first, then Graph reads, each
//     call spending a permit the activity reserves from the token's limiter.
//
// No failure of Meta's or ours rejects a claim: only a completed read
// without proof, confirmed on the Final re-check, does. A throttle or a
// broken token stops the chunk at once (more calls would extend a block);
// the unchecked claims come back as Deferred with that class.
//
// A claim whose check panics (or the read of its target) is poison: it is
// quarantined and the rest of the chunk goes on (see guard). When every
// claim checked panicked, and not all in one read, the fault is the
// worker's rather than the claims': the activity fails as it would without
// the guard, and nothing is recorded.
func (a *Activities) VerifyClaims(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	k, err := a.openChunk(ctx, in)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %w", err)
	}
	switch {
	case in.Audit:
		err = k.audit(ctx)
	case in.StoredOnly:
		err = k.decideFromStored(ctx)
	default:
		err = k.verifyWithPermits(ctx)
	}
	if err != nil {
		return k.res, err
	}
	return k.record(ctx)
}

// chunk is one VerifyClaims call: its open claims by target, the evidence
// held on those targets, and what it found so far.
type chunk struct {
	ctx    context.Context // the activity's, for the few writes apply makes on its own
	a      *Activities
	in     VerifyInput
	log    log.Logger
	groups []*targetGroup // claims proven by one read of their target's edge
	single []store.Claim  // claims checked one by one (mentions)
	held   map[string]known
	// tenantLoaded is the chunk's tenant, once a mention needed it.
	tenantLoaded *store.Tenant
	grace        time.Duration // how old stored coverage may be and still show absence

	// proven and unproven turn a completed check into a verdict (or an
	// absence, or an audit outcome): the rules of the way the chunk works.
	proven   func(o outcome)
	unproven func(o outcome)

	res      VerifyResult
	out      store.Outcome    // what record writes
	verdicts map[int64]string // the verdict of each decision in out

	stop         *graph.Error // a throttle or broken token: no more calls on this token
	outOfPermits bool
	pz           poisons
	poisoned     []Poisoned
	firstPanic   *panicError
	checked      int // claims whose check ended without a panic
}

// openChunk loads the chunk's claims that are still to check (open ones;
// for an audit, provisional approvals not yet audited) and groups them by
// target. The evidence held on the targets is loaded by loadEvidence.
func (a *Activities) openChunk(ctx context.Context, in VerifyInput) (*chunk, error) {
	claims, err := a.Store.Claims(ctx, in.ClaimIDs)
	if err != nil {
		return nil, err
	}
	var open []store.Claim
	for _, c := range claims {
		if (in.Audit && !auditable(c)) || (!in.Audit && (c.Status == store.StatusDecided || c.Status == store.StatusQuarantined)) {
			continue // decided or quarantined already; or, auditing, not a provisional approval awaiting audit
		}
		open = append(open, c)
	}
	k := &chunk{ctx: ctx, a: a, in: in, log: activity.GetLogger(ctx), verdicts: map[int64]string{}}
	k.groups, k.single = groupByTarget(open)
	k.grace = in.Grace
	if !in.Final && !in.Audit {
		k.grace = 0 // a first check only reports absence, for the re-check
	}
	k.proven = func(o outcome) {
		method := MethodGraph
		if o.source == store.SourceWebhook {
			method, k.res.ByWebhook = MethodWebhook, k.res.ByWebhook+1
		}
		k.decide(o.claim.ID, store.VerdictVerified, method, o.ev)
	}
	k.unproven = func(o outcome) {
		if in.Final {
			k.decide(o.claim.ID, store.VerdictRejected, MethodGraph, o.ev)
			return
		}
		k.res.Absent = append(k.res.Absent, o.claim.ID)
	}
	return k, nil
}

// loadEvidence loads what the store holds on the chunk's targets, actions
// and coverage in one snapshot.
func (k *chunk) loadEvidence(ctx context.Context) error {
	held, err := k.a.knownEvidence(ctx, k.groups)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	k.held = held
	return nil
}

// decide adds a verdict to what record writes.
func (k *chunk) decide(id int64, verdict, method string, ev Evidence) {
	k.out.Decisions = append(k.out.Decisions, store.Decision{ClaimID: id, Verdict: verdict, Method: method, Evidence: ev.json()})
	k.verdicts[id] = verdict
}

// apply turns one claim's outcome into a verdict, an absence, or a reason
// it could not be checked.
func (k *chunk) apply(o outcome) {
	c, err := o.claim, o.err
	if pe, ok := isPoison(err); ok {
		if k.firstPanic == nil {
			k.firstPanic = pe
		}
		k.log.Error("poison claim: its check panicked", "ClaimID", c.ID, "TenantID", c.Tenant, "panic", pe.Error(), "stack", string(pe.stack))
		k.poisoned = append(k.poisoned, Poisoned{ClaimID: c.ID, Reason: pe.Error()})
		return
	}
	var ge *graph.Error
	switch {
	case errors.Is(err, limiter.ErrOutOfPermits):
		k.outOfPermits = true
		k.res.NeedPermits = append(k.res.NeedPermits, c.ID)
		return
	case o.unread:
		k.res.Absent = append(k.res.Absent, c.ID)
	case err == nil && o.found:
		k.proven(o)
	case err == nil || graph.ClassOf(err) == graph.NotFound:
		if err != nil {
			o.ev.Reason = "target_not_found"
		}
		k.unproven(o)
	case errors.As(err, &ge):
		k.res.Usage = ge.Usage
		k.res.Deferred = append(k.res.Deferred, Failed{ClaimID: c.ID, Class: ge.Class, Reason: ge.Error(), RetryAfter: ge.RetryAfter})
		if (ge.Class == graph.Throttled || ge.Class == graph.TokenBroken) && k.stop == nil {
			if ge.Class == graph.TokenBroken {
				if err := k.a.Tokens.MarkBroken(k.ctx, k.in.TokenID, ge); err != nil {
					k.log.Warn("token state not recorded", "TokenID", k.in.TokenID, "error", err)
				}
			}
			k.log.Warn("token stopped", "TokenID", k.in.TokenID, "class", ge.Class, "code", ge.Code, "subcode", ge.Subcode, "retryAfter", ge.RetryAfter)
			k.stop = ge
		}
	default:
		k.res.Deferred = append(k.res.Deferred, Failed{ClaimID: c.ID, Class: graph.Transient, Reason: err.Error()})
	}
	k.checked++
}

// skip reports a claim that waits without a check: the permits ran out,
// or the token stopped.
func (k *chunk) skip(c store.Claim) bool {
	switch {
	case k.outOfPermits:
		k.res.NeedPermits = append(k.res.NeedPermits, c.ID)
	case k.stop != nil:
		k.res.Deferred = append(k.res.Deferred, Failed{ClaimID: c.ID, Class: k.stop.Class, Reason: "not called: " + k.stop.Error(), RetryAfter: k.stop.RetryAfter})
	default:
		return false
	}
	return true
}

// record writes the chunk's outcome in one transaction and completes the
// result with what took effect.
func (k *chunk) record(ctx context.Context) (VerifyResult, error) {
	a, in, res := k.a, k.in, &k.res
	if k.pz.panics >= 2 && k.checked == 0 {
		// Every claim checked panicked, in several places: a bug of the
		// worker's, not poison in the claims. Quarantining would empty the
		// queue into quarantine; the activity fails instead, as without the
		// guard, and its claims go back to pending.
		return *res, fmt.Errorf("verify: every check panicked (%d claims, %d panics): a fault of the worker, not of a claim; nothing quarantined: %w",
			len(k.poisoned), k.pz.panics, k.firstPanic)
	}
	if len(k.poisoned) > 0 {
		if in.LeaseOwner == "" || in.Audit {
			// Only a lease holder can quarantine: the audit sets them aside.
			for _, p := range k.poisoned {
				res.Deferred = append(res.Deferred, Failed{ClaimID: p.ClaimID, Class: graph.Permanent, Reason: "poison claim: " + p.Reason})
			}
		} else {
			k.out.QuarantineOwner = in.LeaseOwner
			for _, p := range k.poisoned {
				k.out.Quarantine = append(k.out.Quarantine, store.Quarantine{ClaimID: p.ClaimID, Reason: p.Reason})
			}
			res.Quarantined = k.poisoned
		}
	}
	now := a.now()
	k.out.Now = now
	if a.UserRiskTTL > 0 {
		k.out.RiskUntil = now.Add(a.UserRiskTTL)
	}
	done, err := a.Store.RecordOutcome(ctx, k.out)
	if err != nil {
		// Retrying re-reads Meta; the reads are cheap next to losing verdicts.
		return *res, fmt.Errorf("verify: record the outcome of %d claims: %w", len(in.ClaimIDs), err)
	}
	if n := len(k.out.Quarantine); done.Quarantined < n {
		// The lease moved on (another batch holds them now): that batch
		// meets the same panic and quarantines them.
		k.log.Warn("poison claims not quarantined: no longer leased here", "claims", n, "quarantined", done.Quarantined)
	}
	for _, id := range done.Decided {
		if k.verdicts[id] == store.VerdictVerified {
			res.Verified++
		} else {
			res.Rejected++
		}
	}
	res.Confirmed, res.Revoked = done.Confirmed, len(done.Revoked)
	return *res, nil
}
