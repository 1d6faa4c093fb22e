package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/graph"
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
	// ChunkSize is claims per VerifyClaims activity that reads. Chunks run
	// one at a time: the token's limiter sets the pace, and chunks in
	// parallel would only queue for the same permits.
	ChunkSize int

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
	// leaseUntil is how long the batch's claims are known to stay leased:
	// the batch is their lease's only keeper (see holdLease).
	leaseUntil time.Time
	sampling   bool // a sample is being checked: its claims need a real first check
}

// TenantBatch verifies one tenant's claims: unverifiable kinds get their
// verdict by rule; the mode decides the rest (batch_modes.go): verify each
// claim, approve on a sample's word, or on honor. A claim's first check
// decides from stored evidence (batch_stored.go); one without evidence is
// checked once more after a grace delay, with Graph reads paced by the
// token's limiter (batch_reads.go), and only then rejected. Claims that
// cannot be checked now (throttle, broken token, missing permission, Meta
// down) are handed back to pending with a backoff: never rejected. A
// premium tenant whose own token fails has those claims moved to the
// platform token (batch_plan.go).
func TenantBatch(ctx workflow.Context, in TenantBatchInput) (Progress, error) {
	b := &tenantBatch{in: in, s: in.Settings.withDefaults()}
	b.progress = Progress{Phase: "planning", TenantID: in.TenantID, Total: len(in.ClaimIDs)}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return b.progress, nil }); err != nil {
		return b.progress, err
	}
	return b.run(ctx)
}

func (b *tenantBatch) run(ctx workflow.Context) (Progress, error) {
	b.leaseUntil = workflow.Now(ctx).Add(b.in.LeaseTTL)
	plan, err := b.plan(ctx)
	if err != nil {
		return b.progress, err
	}
	if !plan.TenantKnown {
		return b.finish(ctx)
	}
	b.setPhase(ctx, "verifying")
	mode := b.s.mode()
	b.progress.Mode = mode
	// Token failures show on the re-check (a first check from stored
	// evidence makes no call), so the fallback settles its claims after.
	if err := b.settle(ctx, mode, plan.TokenID, plan.Verifiable, plan.Risky); err != nil {
		return b.progress, err
	}
	if moved := b.fallBack(ctx, plan); len(moved) > 0 {
		if err := b.settle(ctx, b.s.standardMode(), plan.PlatformTokenID, moved, nil); err != nil {
			return b.progress, err
		}
	}
	return b.finish(ctx)
}

// settle decides claims in a mode on a token, and re-checks those without
// evidence after the grace delay.
func (b *tenantBatch) settle(ctx workflow.Context, mode, tokenID string, ids, risky []int64) error {
	absent, err := b.decide(ctx, mode, tokenID, ids, risky)
	if err != nil {
		return err
	}
	return b.recheck(ctx, tokenID, absent)
}

// recheck waits the grace delay, keeping the claims leased, then checks
// them once more: what webhooks or other batches' reads brought meanwhile
// decides what it can with no call, and the rest is read. A claim still
// without evidence is rejected.
func (b *tenantBatch) recheck(ctx workflow.Context, tokenID string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	b.progress.AwaitingRecheck = len(ids)
	b.setPhase(ctx, "awaiting-recheck")
	b.holdLease(ctx, workflow.Now(ctx).Add(b.s.RecheckDelay))
	if err := workflow.Sleep(ctx, b.s.RecheckDelay); err != nil {
		return err
	}
	b.setPhase(ctx, "rechecking")
	b.progress.AwaitingRecheck = 0
	ids = b.storedPass(ctx, tokenID, ids, true)
	// The re-check is most claims' only read: it retries transient
	// failures like a first check.
	b.checkWithRetries(ctx, tokenID, ids, true)
	return nil
}

// checkWithRetries runs a first check or (final) the re-check, retrying
// transient failures for a few passes; it returns the claims without
// evidence (none on the re-check: they are rejected).
func (b *tenantBatch) checkWithRetries(ctx workflow.Context, tokenID string, ids []int64, final bool) (absent []int64) {
	for pass := 1; len(ids) > 0; pass++ {
		var retry []int64
		for _, r := range b.runChunks(ctx, tokenID, ids, final) {
			absent = append(absent, r.Absent...)
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

// runChunks checks ids in chunks, one at a time, and records the counts: a
// first check outside sampling from stored evidence alone (no call, so no
// permit: one activity takes many claims), otherwise with reads. On the
// re-check, claims whose target another batch reads first go last (one
// look for the whole pass), and wait for that read when their turn comes.
func (b *tenantBatch) runChunks(ctx workflow.Context, tokenID string, ids []int64, final bool) []activities.VerifyResult {
	if !final && !b.sampling {
		return b.storedChunks(ctx, tokenID, ids, false)
	}
	results := make([]activities.VerifyResult, 0, len(ids)/b.s.ChunkSize+1)
	waitFrom := len(ids) // from here on, claims that were behind another batch's read
	if final {
		ahead, behind := b.splitBehindReaders(ctx, ids)
		ids, waitFrom = append(slices.Clip(ahead), behind...), len(ahead)
	}
	for next := 0; next < len(ids); {
		start := next
		next = min(start+b.s.ChunkSize, len(ids))
		if start < waitFrom {
			next = min(next, waitFrom)
		}
		chunk := ids[start:next]
		if start >= waitFrom {
			var behind []int64
			if chunk, behind = b.waitBehindReaders(ctx, tokenID, chunk); len(behind) > 0 {
				ids = append(slices.Clip(ids), behind...) // they come round again, after the others
			}
			if len(chunk) == 0 {
				continue // decided from other batches' reads while it waited
			}
		}
		results = append(results, b.readChunk(ctx, tokenID, chunk, final))
	}
	return results
}

// count adds a chunk's outcome to the progress.
func (b *tenantBatch) count(r activities.VerifyResult) {
	b.progress.Verified += r.Verified
	b.progress.Rejected += r.Rejected
	b.progress.Calls += r.Calls
	b.progress.Quarantined += len(r.Quarantined)
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

// holdLease keeps the batch's claims leased until at least until (and a
// lease TTL more), extending the lease only when it would end within half a
// TTL of until. The batch is the lease's only keeper: it holds it before
// each wait and each chunk it runs, for every claim it still holds (the
// store extends only those still leased to it). A failed extension is not
// fatal: the next one tries again.
func (b *tenantBatch) holdLease(ctx workflow.Context, until time.Time) {
	if !until.Add(b.in.LeaseTTL / 2).After(b.leaseUntil) {
		return
	}
	var a *activities.Activities
	need := until.Add(b.in.LeaseTTL)
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, storeActivityOptions), a.ExtendLease, activities.ExtendLeaseInput{
		Owner: b.in.LeaseOwner, ClaimIDs: b.in.ClaimIDs, TTL: need.Sub(workflow.Now(ctx)),
	}).Get(ctx, nil); err == nil {
		b.leaseUntil = need
	}
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

// graphActivityOptions: a chunk reads Meta for up to ChunkSize claims,
// waiting for its permits as it goes (the pacer stops short of the
// deadline and hands the rest back); it heartbeats so a dead worker is
// noticed within a minute.
var graphActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 10 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval:    2 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
		MaximumAttempts:    5,
	},
}
