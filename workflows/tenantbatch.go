package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// BatchSettings tune a TenantBatch. Durations are wall-clock (already divided
// by the speed factor by whoever builds them).
type BatchSettings struct {
	// Mode of this batch: ModeVerify (default), ModeSample or ModeHonor.
	// The Dispatcher sets it per tenant from the Governor's directive.
	Mode string `json:",omitempty"`
	// ModeReason is the Governor's reason for the mode (kept in honor evidence).
	ModeReason string `json:",omitempty"`
	// StandardMode is the standard tenants' mode: a premium batch whose own
	// token fails mid-run moves the failed claims to the platform token in it.
	StandardMode string `json:",omitempty"`
	// PlatformToken: verify with the platform token even for a premium
	// tenant (its own token is known to be broken).
	PlatformToken bool `json:",omitempty"`

	RecheckDelay time.Duration // grace before a claim without evidence is checked again, then rejected
	RetryDelay   time.Duration // pause between passes over claims that failed transiently
	Passes       int           // passes over transient failures before handing claims back
	ChunkSize    int           // claims per VerifyClaims activity
	Parallel     int           // VerifyClaims activities in flight

	// How long a claim waits before it may be claimed again, by why it could not be checked.
	BackoffTransient   time.Duration
	BackoffThrottled   time.Duration // when Meta gives no regain time
	BackoffTokenBroken time.Duration
	BackoffPermission  time.Duration
}

// DefaultBatchSettings are the settings at speed 1.
func DefaultBatchSettings() BatchSettings {
	return BatchSettings{
		RecheckDelay:       2 * time.Minute,
		RetryDelay:         10 * time.Second,
		Passes:             3,
		ChunkSize:          25,
		Parallel:           4,
		BackoffTransient:   time.Minute,
		BackoffThrottled:   5 * time.Minute,
		BackoffTokenBroken: 15 * time.Minute,
		BackoffPermission:  30 * time.Minute,
	}
}

// Scaled divides every duration by speed, for accelerated runs.
func (s BatchSettings) Scaled(speed float64) BatchSettings {
	if speed <= 0 || speed == 1 {
		return s
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	s.RecheckDelay = scale(s.RecheckDelay)
	s.RetryDelay = scale(s.RetryDelay)
	s.BackoffTransient = scale(s.BackoffTransient)
	s.BackoffThrottled = scale(s.BackoffThrottled)
	s.BackoffTokenBroken = scale(s.BackoffTokenBroken)
	s.BackoffPermission = scale(s.BackoffPermission)
	return s
}

func (s BatchSettings) mode() string {
	if s.Mode == "" || s.Mode == ModeAuto {
		return ModeVerify
	}
	return s.Mode
}

// standardMode is the mode for claims moved to the platform token.
func (s BatchSettings) standardMode() string {
	switch s.StandardMode {
	case ModeSample, ModeHonor:
		return s.StandardMode
	}
	return ModeVerify
}

func (s BatchSettings) withDefaults() BatchSettings {
	d := DefaultBatchSettings()
	if s.ChunkSize <= 0 {
		s.ChunkSize = d.ChunkSize
	}
	if s.Parallel <= 0 {
		s.Parallel = d.Parallel
	}
	if s.Passes <= 0 {
		s.Passes = d.Passes
	}
	return s
}

// TenantBatchInput is one tenant's share of a dispatch: claim ids only, the
// claims themselves stay in the store.
type TenantBatchInput struct {
	TenantID   string
	ClaimIDs   []int64
	LeaseOwner string
	LeaseTTL   time.Duration
	Settings   BatchSettings
}

// Progress is the `progress` query's answer, the memo and the result.
type Progress struct {
	Phase           string // planning, verifying, awaiting-recheck, rechecking, done
	TenantID        string
	TokenID         string
	Total           int
	Unverifiable    int
	Verified        int
	Rejected        int
	AwaitingRecheck int
	Deferred        int // handed back to pending, to be claimed again later
	AlreadyDecided  int
	Calls           int    // Graph API calls made
	Alert           string `json:",omitempty"` // e.g. the token is broken
	// Sampling (mode sample): how many claims were sampled, how many had no
	// evidence on their first check, the plan's verdict, and the claims
	// approved by it.
	Sampled          int    `json:",omitempty"`
	SampleFailed     int    `json:",omitempty"`
	SampleVerdict    string `json:",omitempty"`
	ApprovedBySample int    `json:",omitempty"`
	ApprovedOnHonor  int    `json:",omitempty"`
	Mode             string `json:",omitempty"` // verify, sample or honor
	FellBack         int    `json:",omitempty"` // claims moved from a failed own token to the platform token
	// Quarantined: poison claims (their check panicked), taken out of the
	// queue by the activities; the batch goes on without them.
	Quarantined int `json:",omitempty"`
}

// tenantBatch is one TenantBatch run's state.
type tenantBatch struct {
	in        TenantBatchInput
	s         BatchSettings
	progress  Progress
	deferrals []activities.Deferral

	// paced: every Graph call spends a permit from the token's limiter
	// (version 1 of changeLimiterPermits; earlier runs called unpaced).
	paced      bool
	leaseUntil time.Time // how long the batch's claims are known to stay leased
	// storedFirst: first checks outside sampling decide from stored
	// evidence only (version 1 of changeStoredFirst).
	storedFirst bool
	// leaseWhileQueued: the lease is kept over waits for a limiter that has
	// no permit to give yet, not only over waits for granted permits.
	leaseWhileQueued bool
	// recheckStored: a re-check decides from stored evidence before it
	// reads, and again at most every grace delay while it waits for permits
	// (another batch's read of the same target may settle its claims).
	recheckStored   bool
	storedCheckedAt time.Time
	// oneReader: a re-check does not queue a read of a target that another
	// batch, holding an older claim on it, reads first; it waits for that
	// read and decides from it (version 1 of changeOneReader).
	oneReader bool
	// honorStored: honor approves only claims that stored evidence does not
	// prove (version 1 of changeHonorStored).
	honorStored bool
	sampling    bool // a sample is being checked: its claims need a real first check
	checked     int  // claims checked so far, for the calls-per-claim estimate
}

// changeLimiterPermits versions the switch to limiter permits.
const changeLimiterPermits = "limiter-permits"

// TenantBatch verifies one tenant's claims: unverifiable kinds get their
// verdict by rule; each verifiable claim is checked with Graph API reads; a
// claim without evidence is checked once more after a grace delay and only
// then rejected. Claims that cannot be checked now (throttle, broken token,
// missing permission, Meta down) are handed back to pending with a backoff:
// never rejected.
func TenantBatch(ctx workflow.Context, in TenantBatchInput) (Progress, error) {
	b := &tenantBatch{in: in, s: in.Settings.withDefaults()}
	b.progress = Progress{Phase: "planning", TenantID: in.TenantID, Total: len(in.ClaimIDs)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return b.progress, nil }); err != nil {
		return b.progress, err
	}
	return b.run(ctx)
}

func (b *tenantBatch) run(ctx workflow.Context) (Progress, error) {
	var a *activities.Activities
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	b.paced = workflow.GetVersion(ctx, changeLimiterPermits, workflow.DefaultVersion, 1) == 1
	hybrid := workflow.GetVersion(ctx, changeHybrid, workflow.DefaultVersion, 1) == 1
	b.storedFirst = hybrid && workflow.GetVersion(ctx, changeStoredFirst, workflow.DefaultVersion, 1) == 1
	b.leaseWhileQueued = b.storedFirst && workflow.GetVersion(ctx, changeLeaseWhileQueued, workflow.DefaultVersion, 1) == 1
	b.honorStored = b.storedFirst && b.s.mode() == ModeHonor && workflow.GetVersion(ctx, changeHonorStored, workflow.DefaultVersion, 1) == 1
	b.leaseUntil = workflow.Now(ctx).Add(b.in.LeaseTTL)

	var plan activities.Plan
	planIn := activities.PlanInput{TenantID: b.in.TenantID, ClaimIDs: b.in.ClaimIDs}
	if hybrid {
		planIn.PlatformToken, planIn.SplitRisky = b.s.PlatformToken, true
	}
	if err := workflow.ExecuteActivity(sctx, a.PlanBatch, planIn).Get(ctx, &plan); err != nil {
		return b.progress, err
	}
	if !plan.TenantKnown {
		b.progress.Alert = "unknown tenant " + b.in.TenantID
		b.deferAll(b.in.ClaimIDs, graph.Permanent, "unknown tenant")
		return b.finish(ctx)
	}
	b.progress.TokenID = plan.TokenID
	b.progress.AlreadyDecided = plan.AlreadyDecided
	if plan.Tier == store.TierPremium && !plan.OwnToken && b.s.PlatformToken {
		b.progress.Alert = "own token broken: on the platform token (" + b.s.ModeReason + ")"
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, TokenIDKey.ValueSet(plan.TokenID)); err != nil {
		return b.progress, err
	}

	if len(plan.Unverifiable) > 0 {
		decisions := make([]store.Decision, len(plan.Unverifiable))
		for i, u := range plan.Unverifiable {
			decisions[i] = store.Decision{
				ClaimID: u.ClaimID, Verdict: store.VerdictUnverifiable, Method: activities.MethodRule,
				Evidence: fmt.Sprintf(`{"reason":"no Graph API read can prove %s"}`, u.Kind),
			}
		}
		var n int
		if err := workflow.ExecuteActivity(sctx, a.RecordVerdicts, decisions).Get(ctx, &n); err != nil {
			return b.progress, err
		}
		b.progress.Unverifiable = n
	}

	b.setPhase(ctx, "verifying")
	mode := b.s.mode()
	if !hybrid && (mode != ModeSample || plan.Tier != store.TierStandard) {
		mode = ModeVerify // before the Governor, premium tenants were always verified
	}
	b.progress.Mode = mode
	// A premium tenant's own token broke (190) or cannot read its account:
	// its claims go the standard way on the platform token, and the Governor
	// moves the tenant there until the token works again. Nothing is rejected.
	fallBack := func() []int64 {
		if !hybrid || !plan.OwnToken {
			return nil
		}
		moved, alert := b.takeTokenFailures()
		if len(moved) > 0 {
			b.alertGovernor(ctx, policy.TokenAlert{TokenID: plan.TokenID, Tenant: b.in.TenantID, Broken: true, Reason: alert})
			b.progress.Alert = "own token " + plan.TokenID + " failed (" + alert + "): " + fmt.Sprint(len(moved)) + " claims moved to the platform token"
			b.progress.FellBack += len(moved)
		}
		return moved
	}

	if !b.storedFirst {
		// Before "stored-first": the fallback was decided before one shared re-check.
		absent, err := b.decide(ctx, mode, plan.TokenID, plan.Verifiable, plan.Risky)
		if err != nil {
			return b.progress, err
		}
		rechecks := []recheck{{plan.TokenID, absent}}
		if moved := fallBack(); len(moved) > 0 {
			absent, err := b.decide(ctx, b.s.standardMode(), plan.PlatformTokenID, moved, nil)
			if err != nil {
				return b.progress, err
			}
			rechecks = append(rechecks, recheck{plan.PlatformTokenID, absent})
		}
		if err := b.recheck(ctx, rechecks); err != nil {
			return b.progress, err
		}
		return b.finish(ctx)
	}

	// Token failures show on the re-check too (a first check from stored
	// evidence makes no call), so the fallback settles its claims after.
	if err := b.settle(ctx, mode, plan.TokenID, plan.Verifiable, plan.Risky); err != nil {
		return b.progress, err
	}
	if moved := fallBack(); len(moved) > 0 {
		if err := b.settle(ctx, b.s.standardMode(), plan.PlatformTokenID, moved, nil); err != nil {
			return b.progress, err
		}
	}
	return b.finish(ctx)
}

// recheck is claims without evidence on their first check, by token.
type recheck struct {
	tokenID string
	ids     []int64
}

// settle decides claims in a mode on a token, and re-checks those without
// evidence after the grace delay.
func (b *tenantBatch) settle(ctx workflow.Context, mode, tokenID string, ids, risky []int64) error {
	absent, err := b.decide(ctx, mode, tokenID, ids, risky)
	if err != nil {
		return err
	}
	return b.recheck(ctx, []recheck{{tokenID, absent}})
}

// recheck waits the grace delay, keeping the claims leased, then checks
// them once more: a claim still without evidence is rejected.
func (b *tenantBatch) recheck(ctx workflow.Context, rechecks []recheck) error {
	var waiting []int64
	for _, r := range rechecks {
		waiting = append(waiting, r.ids...)
	}
	if len(waiting) == 0 {
		return nil
	}
	var a *activities.Activities
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	b.progress.AwaitingRecheck = len(waiting)
	b.setPhase(ctx, "awaiting-recheck")
	// Keep the lease over the grace delay, or another dispatch would take the claims.
	if err := workflow.ExecuteActivity(sctx, a.ExtendLease, activities.ExtendLeaseInput{
		Owner: b.in.LeaseOwner, ClaimIDs: waiting, TTL: b.s.RecheckDelay + b.in.LeaseTTL,
	}).Get(ctx, nil); err != nil {
		return err
	}
	if err := workflow.Sleep(ctx, b.s.RecheckDelay); err != nil {
		return err
	}
	b.setPhase(ctx, "rechecking")
	b.progress.AwaitingRecheck = 0
	if b.storedFirst && workflow.GetVersion(ctx, changeRecheckStored, workflow.DefaultVersion, 1) == 1 {
		// What webhooks or other batches' reads brought during the grace
		// delay decides claims now, with no call: only the rest queues for
		// the token's permits (behind other batches, on a busy token), and
		// looks again while it waits (see awaitPermits).
		b.recheckStored, b.storedCheckedAt = true, workflow.Now(ctx)
		b.oneReader = workflow.GetVersion(ctx, changeOneReader, workflow.DefaultVersion, 1) == 1
		for i := range rechecks {
			rechecks[i].ids = b.checkStored(ctx, rechecks[i].tokenID, rechecks[i].ids)
		}
	}
	for _, rc := range rechecks {
		if b.storedFirst {
			// The re-check is now most claims' only read: it retries
			// transient failures like a first check.
			b.checkWithRetries(ctx, rc.tokenID, rc.ids, true)
			continue
		}
		for _, r := range b.runChunks(ctx, rc.tokenID, rc.ids, true) {
			b.deferFailed(r.Deferred)
			b.deferAll(r.NeedPermits, graph.Transient, "re-check ran out of permits")
		}
	}
	return nil
}

// changeHybrid versions the Governor's modes (honor, per-user risk, the
// premium fallback to the platform token).
const changeHybrid = "hybrid-modes"

// changeRecheckStored versions the stored-evidence pass that opens a
// re-check, before any permit is reserved.
const changeRecheckStored = "recheck-stored"

// changeHonorStored versions honor batches deciding from stored evidence
// before they approve on honor.
const changeHonorStored = "honor-stored-first"

// changeOneReader versions the wait for another batch's read of the same
// target (see waitBehindReaders).
const changeOneReader = "one-reader-per-target"

// splitBehindReaders splits claims into those read now and those whose
// target another batch reads first (it holds an older claim on it), in
// their order. When the store cannot tell, every claim is read now.
func (b *tenantBatch) splitBehindReaders(ctx workflow.Context, ids []int64) (now, behind []int64) {
	var a *activities.Activities
	var waiting []int64
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, storeActivityOptions), a.BehindReaders, activities.BehindReadersInput{
		Owner: b.in.LeaseOwner, ClaimIDs: ids,
	}).Get(ctx, &waiting); err != nil || len(waiting) == 0 {
		return ids, nil
	}
	for _, id := range ids {
		if _, found := slices.BinarySearch(waiting, id); found {
			behind = append(behind, id)
		} else {
			now = append(now, id)
		}
	}
	return now, behind
}

// waitBehindReaders takes claims that were behind another batch's read:
// while every one still is, it waits a grace delay, keeping the lease, and
// decides what the other reads stored. It returns the claims to read now
// and those still behind (to come round again). Every target has one batch
// not behind anyone (the one with its oldest open claim), so the wait ends.
func (b *tenantBatch) waitBehindReaders(ctx workflow.Context, tokenID string, ids []int64) (now, behind []int64) {
	for len(ids) > 0 {
		if now, behind = b.splitBehindReaders(ctx, ids); len(now) > 0 {
			return now, behind
		}
		b.holdLease(ctx, ids, workflow.Now(ctx).Add(b.s.RecheckDelay))
		if err := workflow.Sleep(ctx, b.s.RecheckDelay); err != nil {
			return ids, nil
		}
		b.storedCheckedAt = workflow.Now(ctx)
		ids = b.checkStored(ctx, tokenID, ids)
	}
	return nil, nil
}

// checkStored decides claims from stored evidence alone, as a final check
// (a stored read made after a claim's grace delay rejects it), and returns
// the claims it could not decide.
func (b *tenantBatch) checkStored(ctx workflow.Context, tokenID string, ids []int64) []int64 {
	return b.storedPass(ctx, tokenID, ids, true)
}

// storedPass decides claims from stored evidence alone and returns the
// claims it could not decide. As a final check, a stored read made after a
// claim's grace delay rejects a claim; otherwise only proof decides. A
// failed activity decides nothing: its claims come back undecided.
func (b *tenantBatch) storedPass(ctx workflow.Context, tokenID string, ids []int64, final bool) (rest []int64) {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	for start := 0; start < len(ids); start += storedOnlyChunk {
		chunk := ids[start:min(start+storedOnlyChunk, len(ids))]
		var r activities.VerifyResult
		if err := workflow.ExecuteActivity(actx, a.VerifyClaims, activities.VerifyInput{
			TenantID: b.in.TenantID, TokenID: tokenID, ClaimIDs: chunk,
			LeaseOwner: b.in.LeaseOwner, LeaseTTL: b.in.LeaseTTL, Final: final, Grace: b.s.RecheckDelay,
			StoredOnly: true,
		}).Get(ctx, &r); err != nil {
			workflow.GetLogger(ctx).Warn("stored-evidence re-check failed; its claims are read instead", "claims", len(chunk), "error", err)
			rest = append(rest, chunk...)
			continue
		}
		b.progress.Verified += r.Verified
		b.progress.Rejected += r.Rejected
		b.progress.Quarantined += len(r.Quarantined)
		rest = append(rest, r.Absent...)
		for _, f := range r.Deferred {
			rest = append(rest, f.ClaimID)
		}
	}
	return rest
}

// changeLeaseWhileQueued versions lease extensions while a batch waits for
// a limiter with no permit to give yet.
const changeLeaseWhileQueued = "lease-while-queued"

// initialPermits is what a batch's first chunk reserves before it knows
// its calls per claim (a chunk spans a few targets, a read each).
const initialPermits = 3

// storedOnlyChunk is how many claims one stored-evidence check takes.
const storedOnlyChunk = 500

// changeStoredFirst versions first checks from stored evidence: outside
// sampling, a claim's first check makes no call (webhooks and earlier reads
// may prove it); the re-check after the grace delay reads each target once.
const changeStoredFirst = "stored-first"

// decide settles claims in a mode on a token and returns those without
// evidence on their first check. Claims of risky users (a recent false
// claim) are verified one by one whatever the mode.
func (b *tenantBatch) decide(ctx workflow.Context, mode, tokenID string, ids, risky []int64) ([]int64, error) {
	switch mode {
	case ModeHonor:
		absent := b.verifyWithRetries(ctx, tokenID, risky)
		if b.honorStored {
			// Webhooks and other batches' reads prove claims at no call:
			// only claims without such proof are approved on honor. (Not
			// read: under a backlog the reads are what is short.)
			ids = b.storedPass(ctx, tokenID, ids, false)
		}
		return absent, b.approveOnHonor(ctx, ids)
	case ModeSample:
		absent := b.verifyWithRetries(ctx, tokenID, risky)
		more, err := b.sample(ctx, tokenID, ids)
		return append(absent, more...), err
	}
	return b.verifyWithRetries(ctx, tokenID, append(slices.Clone(risky), ids...)), nil
}

// approveOnHonor approves claims without a call: provisional, audited later
// with spare budget.
func (b *tenantBatch) approveOnHonor(ctx workflow.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	reason, _ := json.Marshal(b.s.ModeReason) //workflowcheck:ignore (a string marshals deterministically)
	ev := `{"mode":"` + ModeHonor + `","reason":` + string(reason) + `}`
	decisions := make([]store.Decision, len(ids))
	for i, id := range ids {
		decisions[i] = store.Decision{ClaimID: id, Verdict: store.VerdictApprovedOnHonor, Method: activities.MethodHonor, Evidence: ev}
	}
	var a *activities.Activities
	var n int
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	if err := workflow.ExecuteActivity(sctx, a.RecordVerdicts, decisions).Get(ctx, &n); err != nil {
		return err
	}
	b.progress.ApprovedOnHonor += n
	return nil
}

// takeTokenFailures removes from the deferrals the claims whose check failed
// on the token itself (broken, or no permission on the account) and returns
// them, with the first failure's reason.
func (b *tenantBatch) takeTokenFailures() (ids []int64, reason string) {
	kept := b.deferrals[:0]
	for _, d := range b.deferrals {
		if d.Class == graph.TokenBroken || d.Class == graph.Permission {
			ids = append(ids, d.ClaimID)
			if reason == "" {
				reason = d.Reason
			}
			continue
		}
		kept = append(kept, d)
	}
	b.deferrals = kept
	return ids, reason
}

// alertGovernor tells the Governor about the tenant's token. Without a
// Governor (a test, an old deployment) the batch goes on: it has already
// moved its own claims.
func (b *tenantBatch) alertGovernor(ctx workflow.Context, alert policy.TokenAlert) {
	err := workflow.SignalExternalWorkflow(ctx, policy.GovernorWorkflowID, "", policy.SignalTokenAlert, alert).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("governor not told about the token", "TokenID", alert.TokenID, "error", err)
	}
}

// sample checks a growing sample of the claims, in an order drawn from the
// workflow's identity, until the sampling plan decides: approve the rest
// (approved_by_sample, provisional until audited) or escalate (verify the
// rest, claim by claim). A claim without evidence on its first check counts
// as a failure for the decision (Meta's data may lag; it is rejected only
// after the grace re-check), so doubt leans towards verifying more. It
// returns the claims to re-check.
func (b *tenantBatch) sample(ctx workflow.Context, tokenID string, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// A sampled claim's first check is a real one: the plan counts what
	// the reads find.
	b.sampling = true
	defer func() { b.sampling = false }()
	sp := policy.DefaultSamplingPlan()
	order := policy.SampleOrder(ids, workflow.GetInfo(ctx).WorkflowExecution.ID)
	n := len(order)
	var absent []int64
	checked, failed := 0, 0
	verdict := policy.Continue
	pos, next := 0, sp.InitialSample(n)
	for pos < n {
		round := order[pos:next]
		deferredBefore, quarantinedBefore := len(b.deferrals), b.progress.Quarantined
		roundAbsent := b.verifyWithRetries(ctx, tokenID, round)
		absent = append(absent, roundAbsent...)
		// Claims handed back or quarantined are not in the sample.
		checked += len(round) - (len(b.deferrals) - deferredBefore) - (b.progress.Quarantined - quarantinedBefore)
		failed += len(roundAbsent)
		pos = next
		b.progress.Sampled, b.progress.SampleFailed = checked, failed
		if verdict = sp.Decide(n, checked, failed); verdict != policy.Continue {
			break
		}
		next = min(n, pos+sp.MinSample)
	}
	b.progress.SampleVerdict = verdict.String()
	rest := order[pos:]
	if len(rest) == 0 {
		return absent, nil
	}
	if verdict == policy.Escalate {
		b.setPhase(ctx, "escalated")
		return append(absent, b.verifyWithRetries(ctx, tokenID, rest)...), nil
	}
	// Approve: the rest of the batch on the sample's word, provisionally.
	evidence := fmt.Sprintf(`{"sampled":%d,"failed_first_check":%d,"batch":%d,"plan":"SPRT p0=%.2f p1=%.2f beta=%.2f alpha=%.2f"}`,
		checked, failed, n, sp.AcceptableFailure, sp.RejectableFailure, sp.ConsumerRisk, sp.ProducerRisk)
	decisions := make([]store.Decision, len(rest))
	for i, id := range rest {
		decisions[i] = store.Decision{ClaimID: id, Verdict: store.VerdictApprovedBySample, Method: activities.MethodSample, Evidence: evidence}
	}
	var a *activities.Activities
	var recorded int
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	if err := workflow.ExecuteActivity(sctx, a.RecordVerdicts, decisions).Get(ctx, &recorded); err != nil {
		return absent, err
	}
	b.progress.ApprovedBySample = recorded
	return absent, nil
}

// verifyWithRetries checks claims, retrying transient failures for a few
// passes; it returns the claims that had no evidence on the first check.
func (b *tenantBatch) verifyWithRetries(ctx workflow.Context, tokenID string, ids []int64) (absent []int64) {
	return b.checkWithRetries(ctx, tokenID, ids, false)
}

// checkWithRetries runs a first check or (final) the re-check, retrying
// transient failures for a few passes; it returns the claims without
// evidence (none on the re-check: they are rejected).
func (b *tenantBatch) checkWithRetries(ctx workflow.Context, tokenID string, ids []int64, final bool) (absent []int64) {
	for pass := 1; len(ids) > 0; pass++ {
		var retry []int64
		for _, r := range b.runChunks(ctx, tokenID, ids, final) {
			absent = append(absent, r.Absent...)
			retry = append(retry, r.NeedPermits...)
			for _, f := range r.Deferred {
				if f.Class == graph.Transient && pass < b.s.Passes {
					retry = append(retry, f.ClaimID)
					continue
				}
				b.deferFailed([]activities.Failed{f})
			}
		}
		ids = retry
		if len(ids) > 0 && pass >= b.s.Passes {
			b.deferAll(ids, graph.Transient, "not checked within the passes")
			return absent
		}
		if len(ids) > 0 {
			if err := workflow.Sleep(ctx, b.s.RetryDelay*time.Duration(pass)); err != nil {
				b.deferAll(ids, graph.Transient, "canceled")
				return absent
			}
		}
	}
	return absent
}

// runChunks runs VerifyClaims over ids in chunks, Parallel at a time, and
// records the counts. A chunk whose activity failed for good comes back as
// transient failures of all its claims.
func (b *tenantBatch) runChunks(ctx workflow.Context, tokenID string, ids []int64, final bool) []activities.VerifyResult {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	results := make([]activities.VerifyResult, 0, len(ids)/b.s.ChunkSize+1)
	parallel := b.s.Parallel
	if b.paced {
		// The limiter sets the pace: chunks in parallel would only queue for
		// the same token's permits, and crowd its limiter with Updates.
		parallel = 1
	}
	selector := workflow.NewSelector(ctx)
	inFlight := 0
	collect := func(chunk []int64) func(workflow.Future) {
		return func(f workflow.Future) {
			inFlight--
			var r activities.VerifyResult
			if err := f.Get(ctx, &r); err != nil {
				workflow.GetLogger(ctx).Warn("VerifyClaims failed; claims go back to pending", "claims", len(chunk), "error", err)
				r = activities.VerifyResult{}
				for _, id := range chunk {
					r.Deferred = append(r.Deferred, activities.Failed{ClaimID: id, Class: graph.Transient, Reason: "verify activity failed"})
				}
			}
			b.progress.Verified += r.Verified
			b.progress.Rejected += r.Rejected
			b.progress.Calls += r.Calls
			b.progress.Quarantined += len(r.Quarantined)
			b.checked += len(chunk) - len(r.NeedPermits)
			results = append(results, r)
		}
	}
	// A first check from stored evidence makes no call: it needs no permit,
	// and one activity takes many claims.
	storedOnly := !final && b.storedFirst && !b.sampling
	chunkSize := b.s.ChunkSize
	if storedOnly {
		chunkSize = storedOnlyChunk
	}
	// One reader per target: claims whose target another batch reads first
	// go last (one look for the whole pass), and wait for that read when
	// their turn comes.
	oneReader := b.oneReader && final && b.paced && !storedOnly
	waitFrom := len(ids) // from here on, claims that were behind another batch's read
	if oneReader {
		ahead, behind := b.splitBehindReaders(ctx, ids)
		ids, waitFrom = append(slices.Clip(ahead), behind...), len(ahead)
	}
	for next := 0; next < len(ids); {
		start := next
		next = min(start+chunkSize, len(ids))
		if start < waitFrom {
			next = min(next, waitFrom)
		}
		chunk := ids[start:next]
		in := activities.VerifyInput{
			TenantID: b.in.TenantID, TokenID: tokenID, ClaimIDs: chunk,
			LeaseOwner: b.in.LeaseOwner, LeaseTTL: b.in.LeaseTTL, Final: final, Grace: b.s.RecheckDelay,
			StoredOnly: storedOnly,
		}
		cctx := actx
		if oneReader && start >= waitFrom {
			var behind []int64
			if chunk, behind = b.waitBehindReaders(ctx, tokenID, chunk); len(behind) > 0 {
				ids = append(slices.Clip(ids), behind...) // they come round again, after the others
			}
			if len(chunk) == 0 {
				continue // decided from other batches' reads while it waited
			}
			in.ClaimIDs = chunk
		}
		if b.paced && !storedOnly {
			var ok bool
			if in, cctx, ok = b.awaitPermits(ctx, in, ids[start:]); !ok {
				var r activities.VerifyResult
				for _, id := range chunk {
					r.Deferred = append(r.Deferred, activities.Failed{ClaimID: id, Class: graph.Throttled, Reason: "limiter granted no permits (paused)"})
				}
				results = append(results, r)
				continue
			}
			if len(in.ClaimIDs) == 0 {
				continue // decided from stored evidence while it waited
			}
			chunk = in.ClaimIDs
		}
		f := workflow.ExecuteActivity(cctx, a.VerifyClaims, in)
		selector.AddFuture(f, collect(chunk))
		inFlight++
		if inFlight >= parallel {
			selector.Select(ctx)
		}
	}
	for inFlight > 0 {
		selector.Select(ctx)
	}
	return results
}

// awaitPermits reserves permits for a chunk from the token's limiter, keeps
// the batch's remaining claims leased over the wait, and sleeps until the
// first permit. ok is false when the limiter granted none (paused).
func (b *tenantBatch) awaitPermits(ctx workflow.Context, in activities.VerifyInput, remaining []int64) (activities.VerifyInput, workflow.Context, bool) {
	var a *activities.Activities
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	// One permit per call. Claims on one target share a read (a page a
	// call) and stored evidence costs none, so the estimate follows the
	// calls per claim this batch has seen; the chunk reserves more as it goes.
	n := min(len(in.ClaimIDs), initialPermits)
	if b.checked > 0 {
		n = (len(in.ClaimIDs)*b.progress.Calls + b.checked - 1) / b.checked
	}
	n = min(max(1, n), limiter.MaxPermitsPerReservation)
	var resp limiter.ReserveResponse
	for {
		if err := workflow.ExecuteActivity(sctx, a.ReservePermits, activities.ReserveInput{TokenID: in.TokenID, N: n, Class: limiter.Verify}).Get(ctx, &resp); err != nil || resp.Paused {
			return in, ctx, false
		}
		if len(resp.Permits) > 0 {
			break
		}
		// Other callers hold the permits due soon: ask again when ours come.
		if b.recheckStored && in.Final && !workflow.Now(ctx).Before(b.storedCheckedAt.Add(b.s.RecheckDelay)) {
			b.storedCheckedAt = workflow.Now(ctx)
			if in.ClaimIDs = b.checkStored(ctx, in.TokenID, in.ClaimIDs); len(in.ClaimIDs) == 0 {
				return in, ctx, true // settled by other reads: nothing to call for
			}
		}
		wait := max(resp.RetryAt.Sub(workflow.Now(ctx)), resp.Spacing)
		if b.leaseWhileQueued {
			// A busy token can keep a batch asking for longer than the
			// lease: another dispatch would take the claims and ask too.
			b.holdLease(ctx, remaining, workflow.Now(ctx).Add(wait))
		}
		if err := workflow.Sleep(ctx, wait); err != nil {
			return in, ctx, false
		}
	}
	in.Permits, in.Guard = resp.Permits, resp.Guard
	first, last := resp.Permits[0].At, resp.Permits[len(resp.Permits)-1].At
	now := workflow.Now(ctx)
	// Claims wait for their turn leased, or another dispatch would take them.
	b.holdLease(ctx, remaining, last)
	if wait := first.Sub(now); wait > 0 {
		_ = workflow.Sleep(ctx, wait)
	}
	// The chunk may reserve more permits as it goes (claims with many
	// pages): give it time for all n at the current pace, and half again.
	opts := graphActivityOptions
	span := max(last.Sub(workflow.Now(ctx)), time.Duration(n)*resp.Spacing*3/2)
	opts.StartToCloseTimeout = max(opts.StartToCloseTimeout, span+2*time.Minute)
	return in, workflow.WithActivityOptions(ctx, opts), true
}

// holdLease keeps claims leased until at least until (and a lease TTL more),
// extending the lease only when it would end within half a TTL of until.
// A failed extension is not fatal: the next one tries again.
func (b *tenantBatch) holdLease(ctx workflow.Context, ids []int64, until time.Time) {
	if !until.Add(b.in.LeaseTTL / 2).After(b.leaseUntil) {
		return
	}
	var a *activities.Activities
	need := until.Add(b.in.LeaseTTL)
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, storeActivityOptions), a.ExtendLease, activities.ExtendLeaseInput{
		Owner: b.in.LeaseOwner, ClaimIDs: ids, TTL: need.Sub(workflow.Now(ctx)),
	}).Get(ctx, nil); err == nil {
		b.leaseUntil = need
	}
}

func (b *tenantBatch) deferFailed(failed []activities.Failed) {
	for _, f := range failed {
		after := b.backoff(f.Class)
		if f.Class == graph.Throttled && f.RetryAfter > 0 {
			after = f.RetryAfter
		}
		if f.Class == graph.TokenBroken && b.progress.Alert == "" {
			b.progress.Alert = "token " + b.progress.TokenID + " is broken: " + f.Reason
		}
		b.deferrals = append(b.deferrals, activities.Deferral{ClaimID: f.ClaimID, After: after, Reason: string(f.Class) + ": " + f.Reason, Class: f.Class})
	}
}

func (b *tenantBatch) deferAll(ids []int64, class graph.Class, reason string) {
	for _, id := range ids {
		b.deferrals = append(b.deferrals, activities.Deferral{ClaimID: id, After: b.backoff(class), Reason: string(class) + ": " + reason, Class: class})
	}
}

func (b *tenantBatch) backoff(class graph.Class) time.Duration {
	switch class {
	case graph.Throttled:
		return b.s.BackoffThrottled
	case graph.TokenBroken:
		return b.s.BackoffTokenBroken
	case graph.Permission, graph.Permanent:
		return b.s.BackoffPermission
	}
	return b.s.BackoffTransient
}

// finish hands back what could not be decided and publishes the final counts.
func (b *tenantBatch) finish(ctx workflow.Context) (Progress, error) {
	if len(b.deferrals) > 0 {
		var a *activities.Activities
		sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
		var n int
		if err := workflow.ExecuteActivity(sctx, a.DeferClaims, activities.DeferInput{Owner: b.in.LeaseOwner, Deferrals: b.deferrals}).Get(ctx, &n); err != nil {
			return b.progress, err
		}
		b.progress.Deferred = n
		if b.progress.Alert != "" {
			workflow.GetLogger(ctx).Error("batch handed claims back", "TenantID", b.in.TenantID, "TokenID", b.progress.TokenID, "deferred", n, "alert", b.progress.Alert)
		}
	}
	b.setPhase(ctx, "done")
	return b.progress, nil
}

// setPhase moves to a phase and publishes the counts in the memo, which the
// Web UI shows in the workflow list.
func (b *tenantBatch) setPhase(ctx workflow.Context, phase string) {
	b.progress.Phase = phase
	if err := workflow.UpsertMemo(ctx, map[string]any{"progress": b.progress}); err != nil {
		workflow.GetLogger(ctx).Warn("memo not updated", "error", err)
	}
}

// graphActivityOptions: a chunk reads Meta for up to ChunkSize claims; it
// heartbeats per claim so a dead worker is noticed within a minute.
var graphActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    5,
	},
}
