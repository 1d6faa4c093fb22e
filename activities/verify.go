package activities

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// Verdict methods.
const (
	MethodGraph   = "graph"           // decided by reading the Graph API
	MethodRule    = "rule"            // decided by a rule, without a call (unverifiable kinds)
	MethodSample  = "sample"          // approved because the batch's sample passed the sampling plan
	MethodHonor   = "honor"           // approved on honor: the Governor's honor mode
	MethodAudit   = store.MethodAudit // revoked by the audit of a provisional approval
	MethodWebhook = "webhook"         // verified by an action a Meta webhook reported: no call
)

// PlanInput names one tenant's share of a batch.
type PlanInput struct {
	TenantID string
	ClaimIDs []int64
	// PlatformToken: use the platform token even for a premium tenant (its
	// own token is broken).
	PlatformToken bool `json:",omitempty"`
	// SplitRisky: list claims of risky users (store.RiskyUsers) apart, in
	// Risky, for the workflow to verify one by one.
	SplitRisky bool `json:",omitempty"`
}

// Plan says how a tenant's claims will be handled.
type Plan struct {
	TenantKnown     bool
	Tier            store.Tier
	TokenID         string  // the token verification calls use
	OwnToken        bool    // TokenID is the tenant's own token
	PlatformTokenID string  // the platform's token, for the fallback
	Verifiable      []int64 // in target order, so checks of one object run together
	Risky           []int64 `json:",omitempty"` // verifiable claims of users flagged risky (with SplitRisky)
	Unverifiable    []Unverifiable
	AlreadyDecided  int // decided since they were claimed (a previous attempt got there)
	Quarantined     int `json:",omitempty"` // poison claims quarantined since they were claimed: left out of the plan
}

// Unverifiable is a claim of a kind no Graph API read can prove.
type Unverifiable struct {
	ClaimID int64
	Kind    claim.Kind
}

// PlanBatch loads a tenant's claims and splits them by what can be proven.
// Standard tenants are verified with the platform token; premium tenants with
// their own when they have one.
func (a *Activities) PlanBatch(ctx context.Context, in PlanInput) (Plan, error) {
	var p Plan
	tenant, err := a.Store.Tenant(ctx, in.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("plan batch: %w", err)
	}
	p.TenantKnown = true
	p.Tier = tenant.Tier
	p.TokenID, p.OwnToken = a.readToken(tenant, in.PlatformToken)
	p.PlatformTokenID = a.PlatformTokenID
	claims, err := a.Store.Claims(ctx, in.ClaimIDs)
	if err != nil {
		return p, fmt.Errorf("plan batch: %w", err)
	}
	risky := map[string]bool{}
	if in.SplitRisky {
		users := make([]string, 0, len(claims))
		for _, c := range claims {
			users = append(users, c.User)
		}
		flagged, err := a.Store.RiskyUsers(ctx, in.TenantID, users, a.now())
		if err != nil {
			return p, fmt.Errorf("plan batch: %w", err)
		}
		for _, u := range flagged {
			risky[u] = true
		}
	}
	sortByTarget(claims)
	for _, c := range claims {
		switch {
		case c.Status == store.StatusDecided:
			p.AlreadyDecided++
		case c.Status == store.StatusQuarantined:
			p.Quarantined++
		case !c.Kind.Verifiable():
			p.Unverifiable = append(p.Unverifiable, Unverifiable{ClaimID: c.ID, Kind: c.Kind})
		case risky[c.User]:
			p.Risky = append(p.Risky, c.ID)
		default:
			p.Verifiable = append(p.Verifiable, c.ID)
		}
	}
	return p, nil
}

// VerifyInput is a chunk of claims to check with one token.
type VerifyInput struct {
	TenantID   string
	TokenID    string
	ClaimIDs   []int64
	LeaseOwner string
	LeaseTTL   time.Duration
	// Final: this is the re-check after the grace delay, so a claim still
	// without evidence is rejected. On the first check it is reported Absent.
	Final bool
	// Permits from the token's limiter, one per call, and how late after
	// its time a permit may still be used. Nil: calls are not paced.
	Permits []limiter.Permit
	Guard   time.Duration
	// Class of the permits the chunk reserves when it needs more.
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
	// NeedPermits: the permits ran out before these claims were checked.
	NeedPermits []int64
	Calls       int // Graph API calls made
	Wasted      int // permits skipped because the call would have been too late
	Confirmed   int // audit: provisional approvals proven
	Revoked     int // audit: provisional approvals revoked
	Groups      int // target edges read or looked up (one read proves every claim on a target)
	ByWebhook   int // verified by webhook evidence, without a call
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

// VerifyClaims checks each claim of the chunk with Graph API reads and records
// the claims it can decide. A throttle or a broken token stops the chunk at
// once (more calls would extend a block); the unchecked claims come back as
// Deferred with that class. No failure of Meta's or ours rejects a claim:
// only a completed read without proof, confirmed on the Final re-check, does.
//
// A claim whose check panics (or the read of its target) is poison: it is
// quarantined and the rest of the chunk goes on (see guard). When every
// claim checked panicked, and not all in one read, the fault is the
// worker's rather than the claims': the activity fails as it would without
// the guard, and nothing is quarantined.
func (a *Activities) VerifyClaims(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	var res VerifyResult
	log := activity.GetLogger(ctx)
	if in.LeaseOwner != "" {
		if _, err := a.Store.ExtendLease(ctx, in.LeaseOwner, in.ClaimIDs, in.LeaseTTL, a.now()); err != nil {
			return res, fmt.Errorf("verify: extend lease: %w", err)
		}
	}
	tenant, err := a.Store.Tenant(ctx, in.TenantID)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	claims, err := a.Store.Claims(ctx, in.ClaimIDs)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	session, err := a.session(ctx, in.TokenID)
	if err != nil {
		// A token we cannot even load is a broken token: nothing is rejected.
		log.Error("token unusable", "TokenID", in.TokenID, "error", err)
		for _, c := range claims {
			res.Deferred = append(res.Deferred, Failed{ClaimID: c.ID, Class: graph.TokenBroken, Reason: err.Error()})
		}
		return res, nil
	}

	pace := a.newPacer(ctx, in.TokenID, in.Permits, in.Guard)
	pace.class = in.Class
	defer func() {
		// Unused permits go back; usage and throttles steer the limiter.
		if err := a.report(context.WithoutCancel(ctx), in.TokenID, limiter.UsageReport{Reports: pace.reports, Release: pace.unused()}); err != nil {
			log.Warn("limiter report not sent", "TokenID", in.TokenID, "error", err)
		}
	}()

	var open []store.Claim
	for _, c := range claims {
		if (in.Audit && !auditable(c)) || (!in.Audit && (c.Status == store.StatusDecided || c.Status == store.StatusQuarantined)) {
			continue // decided or quarantined already; or, auditing, not a provisional approval awaiting audit
		}
		open = append(open, c)
	}
	groups, single := groupByTarget(open)
	held, err := a.knownEvidence(ctx, groups)
	if err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	grace := in.Grace
	if !in.Final && !in.Audit {
		grace = 0 // a first check only reports absence, for the re-check
	}

	var decisions []store.Decision
	var confirmed []int64
	var revoked []revocation
	var reads []store.EvidenceAction
	var coverages []store.Coverage
	var stop *graph.Error // a throttle or broken token: no more calls on this token
	outOfPermits := false
	var pz poisons
	var poisoned []Poisoned
	var firstPanic *panicError
	checked := 0 // claims whose check ended without a panic
	// apply turns one claim's outcome into a verdict, an absence, or a
	// reason it could not be checked.
	apply := func(o outcome) {
		c, ev, err := o.claim, o.ev, o.err
		var ge *graph.Error
		if pe, ok := isPoison(err); ok {
			if firstPanic == nil {
				firstPanic = pe
			}
			log.Error("poison claim: its check panicked", "ClaimID", c.ID, "TenantID", c.Tenant, "panic", pe.Error(), "stack", string(pe.stack))
			poisoned = append(poisoned, Poisoned{ClaimID: c.ID, Reason: pe.Error()})
			return
		}
		if !errors.Is(err, errOutOfPermits) {
			checked++
		}
		switch {
		case errors.Is(err, errOutOfPermits):
			outOfPermits = true
			res.NeedPermits = append(res.NeedPermits, c.ID)
		case o.unread:
			res.Absent = append(res.Absent, c.ID)
		case err == nil && o.found && in.Audit:
			confirmed = append(confirmed, c.ID)
		case err == nil && o.found:
			method := MethodGraph
			if o.source == store.SourceWebhook {
				method, res.ByWebhook = MethodWebhook, res.ByWebhook+1
			}
			decisions = append(decisions, store.Decision{ClaimID: c.ID, Verdict: store.VerdictVerified, Method: method, Evidence: ev.json()})
		case err == nil || graph.ClassOf(err) == graph.NotFound:
			if err != nil {
				ev.Reason = "target_not_found"
			}
			if in.Audit {
				// Audited claims were approved at least a grace delay ago:
				// proof missing now is missing.
				revoked = append(revoked, revocation{claim: c, evidence: ev.json()})
			} else if in.Final {
				decisions = append(decisions, store.Decision{ClaimID: c.ID, Verdict: store.VerdictRejected, Method: MethodGraph, Evidence: ev.json()})
			} else {
				res.Absent = append(res.Absent, c.ID)
			}
		case errors.As(err, &ge):
			res.Usage = ge.Usage
			res.Deferred = append(res.Deferred, Failed{ClaimID: c.ID, Class: ge.Class, Reason: ge.Error(), RetryAfter: ge.RetryAfter})
			if ge.Class == graph.Throttled || ge.Class == graph.TokenBroken {
				if stop == nil && ge.Class == graph.TokenBroken {
					a.markTokenBroken(ctx, in.TokenID, ge)
				}
				if stop == nil {
					log.Warn("token stopped", "TokenID", in.TokenID, "class", ge.Class, "code", ge.Code, "subcode", ge.Subcode, "retryAfter", ge.RetryAfter)
				}
				stop = ge
			}
		default:
			res.Deferred = append(res.Deferred, Failed{ClaimID: c.ID, Class: graph.Transient, Reason: err.Error()})
		}
	}
	// skip reports claims that wait: the permits ran out, or the token stopped.
	skip := func(c store.Claim) bool {
		switch {
		case outOfPermits:
			res.NeedPermits = append(res.NeedPermits, c.ID)
		case stop != nil:
			res.Deferred = append(res.Deferred, Failed{ClaimID: c.ID, Class: stop.Class, Reason: "not called: " + stop.Error(), RetryAfter: stop.RetryAfter})
		default:
			return false
		}
		return true
	}

	for i, g := range groups {
		if outOfPermits || stop != nil {
			for _, c := range g.claims {
				skip(c)
			}
			continue
		}
		activity.RecordHeartbeat(ctx, i)
		pace.claimsLeft = len(groups) - i + len(single)
		outs, read, cov, calls := a.checkGroup(pace, session, g, held[g.target+"/"+g.read.edge], grace, a.metaTime(in.Grace), in.StoredOnly, &pz)
		res.Calls += calls
		res.Groups++
		reads = append(reads, read...)
		if cov != nil {
			coverages = append(coverages, *cov)
		}
		for _, o := range outs {
			apply(o)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	for i, c := range single {
		if skip(c) {
			continue
		}
		if in.StoredOnly {
			apply(outcome{claim: c, unread: true, ev: Evidence{Object: c.Target, Reason: "not read yet"}})
			continue
		}
		activity.RecordHeartbeat(ctx, len(groups)+i)
		pace.claimsLeft = len(single) - i
		ev, found, calls, err := a.check(pace, session, tenant, c, &pz)
		res.Calls += calls
		apply(outcome{claim: c, found: found, ev: ev, err: err, source: store.SourceGraph})
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	if pz.panics >= 2 && checked == 0 {
		// Every claim checked panicked, in several places: a bug of the
		// worker's, not poison in the claims. Quarantining would empty the
		// queue into quarantine; the activity fails instead, as without the
		// guard, and its claims go back to pending.
		return res, fmt.Errorf("verify: every check panicked (%d claims, %d panics): a fault of the worker, not of a claim; nothing quarantined: %w",
			len(poisoned), pz.panics, firstPanic)
	}
	if err := a.keepEvidence(ctx, reads, coverages); err != nil {
		// The verdicts stand without it; later claims will read again.
		log.Warn("evidence not stored", "TokenID", in.TokenID, "actions", len(reads), "error", err)
	}
	res.Wasted = pace.wasted
	if err := a.quarantine(ctx, in, poisoned, &res); err != nil {
		return res, err
	}
	if len(decisions) > 0 {
		if _, err := a.Store.Decide(ctx, decisions, a.now()); err != nil {
			// Retrying re-reads Meta; the reads are cheap next to losing verdicts.
			return res, fmt.Errorf("verify: record verdicts: %w", err)
		}
	}
	var falseClaims []store.Claim
	byID := map[int64]store.Claim{}
	for _, c := range claims {
		byID[c.ID] = c
	}
	for _, d := range decisions {
		if d.Verdict == store.VerdictVerified {
			res.Verified++
		} else {
			res.Rejected++
			falseClaims = append(falseClaims, byID[d.ClaimID])
		}
	}
	if in.Audit {
		if res.Confirmed, err = a.Store.MarkAudited(ctx, confirmed, a.now()); err != nil {
			return res, fmt.Errorf("audit: record confirmations: %w", err)
		}
		for _, r := range revoked {
			ok, err := a.Store.Revoke(ctx, r.claim.ID, r.evidence, a.now())
			if err != nil {
				return res, fmt.Errorf("audit: revoke claim %d: %w", r.claim.ID, err)
			}
			if ok {
				res.Revoked++
				falseClaims = append(falseClaims, r.claim)
			}
		}
	}
	if err := a.flagUsers(ctx, falseClaims); err != nil {
		return res, err
	}
	return res, nil
}

// revocation is a provisional approval an audit found false.
type revocation struct {
	claim    store.Claim
	evidence string
}

// auditable: a provisional approval (sample, honor) not yet audited.
func auditable(c store.Claim) bool {
	return c.Status == store.StatusDecided && c.AuditedAt.IsZero() &&
		(c.Verdict == store.VerdictApprovedBySample || c.Verdict == store.VerdictApprovedOnHonor)
}

// flagUsers makes the users of false claims risky for UserRiskTTL: their
// next claims are verified one by one, never sampled or approved on honor.
func (a *Activities) flagUsers(ctx context.Context, falseClaims []store.Claim) error {
	if len(falseClaims) == 0 || a.UserRiskTTL <= 0 {
		return nil
	}
	until := a.now().Add(a.UserRiskTTL)
	flags := make([]store.UserFlag, len(falseClaims))
	for i, c := range falseClaims {
		flags[i] = store.UserFlag{Tenant: c.Tenant, User: c.User, Until: until, Reason: fmt.Sprintf("claim %s/%s found false", c.Tenant, c.Key)}
	}
	if err := a.Store.FlagUsers(ctx, flags); err != nil {
		return fmt.Errorf("flag risky users: %w", err)
	}
	return nil
}

// readToken is the token that reads a tenant's evidence: a premium
// tenant's own token, unless onPlatform (its token is known broken), else
// the platform token. own says which.
func (a *Activities) readToken(t store.Tenant, onPlatform bool) (id string, own bool) {
	if t.Tier == store.TierPremium && t.TokenID != "" && !onPlatform {
		return t.TokenID, true
	}
	return a.PlatformTokenID, false
}

func (a *Activities) session(ctx context.Context, tokenID string) (*graph.Session, error) {
	if tokenID == store.AppTokenID {
		return a.Graph.AppSession(ctx), nil
	}
	tok, err := a.Store.Token(ctx, tokenID)
	if err != nil {
		return nil, fmt.Errorf("token %s: %w", tokenID, err)
	}
	value, err := a.tokenValue(tok)
	if err != nil {
		return nil, err
	}
	return a.Graph.Session(ctx, value), nil
}

// check reads the Graph API for one claim of a kind that is not read by
// target (a mention: one media per claim): found reports proof, ev
// describes what was read either way.
// The call and the matching run under guard (pz): a panic in them makes the
// claim poison (err a *panicError).
func (a *Activities) check(pace *pacer, s *graph.Session, tenant store.Tenant, c store.Claim, pz *poisons) (ev Evidence, found bool, calls int, err error) {
	ev.Object = c.Target
	switch c.Kind {
	case claim.IGMention:
		brand := tenant.InstagramAccount()
		ev.Endpoint = "GET /{ig-user-id}?fields=mentioned_media"
		if brand == "" {
			return ev, false, 0, &graph.Error{Class: graph.Permanent, Op: ev.Endpoint, Message: "tenant has no Instagram account"}
		}
		if err := pace.before(); err != nil {
			return ev, false, 0, err
		}
		var (
			action evidence.Action
			usage  graph.Usage
		)
		if perr := pz.run(func() { action, usage, err = s.MentionedMedia(brand, c.Target) }); perr != nil {
			return ev, false, 1, perr // the permit is spent: the call may have been made
		}
		pace.after(usage, err)
		if err != nil {
			return ev, false, 1, err
		}
		ev.Pages, ev.Scanned = 1, 1
		var m evidence.Mismatch
		if perr := pz.run(func() { m = evidence.Check(c.Claim, action) }); perr != nil {
			return ev, false, 1, perr
		}
		if m != evidence.NoMatch {
			ev.Reason = string(m)
			return ev, false, 1, nil
		}
		ev.Match = &action
		return ev, true, 1, nil
	}
	return ev, false, 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("kind %s has no Graph check", c.Kind), "Unverifiable", nil)
}

// sortByTarget orders claims so checks of one object run one after another.
func sortByTarget(claims []store.Claim) {
	slices.SortFunc(claims, func(x, y store.Claim) int {
		return cmp.Or(cmp.Compare(x.Target, y.Target), cmp.Compare(x.ID, y.ID))
	})
}
