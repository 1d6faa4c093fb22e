package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/graph"
)

// storedOnlyChunk is how many claims one stored-evidence check takes: it
// makes no call, so it needs no permit and reads only the store.
const storedOnlyChunk = 500

// storedChunkTime is the lease a stored-evidence chunk is given: it reads
// the store only, in well under a second.
const storedChunkTime = time.Minute

// storedChunks checks claims from stored evidence alone (webhooks, earlier
// reads), storedOnlyChunk at a time, and records the counts. As a final
// check a stored read made after a claim's grace delay rejects it;
// otherwise only proof decides. A chunk whose activity failed for good
// comes back as transient failures of all its claims.
func (b *tenantBatch) storedChunks(ctx workflow.Context, tokenID string, ids []int64, final bool) []activities.VerifyResult {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	var results []activities.VerifyResult
	for chunk := range slices.Chunk(ids, storedOnlyChunk) {
		if len(results) > 0 {
			// Many chunks (an honor backlog) can outlast the lease the
			// Dispatcher gave: keep it, as for every wait and read.
			b.holdLease(ctx, workflow.Now(ctx).Add(storedChunkTime))
		}
		var r activities.VerifyResult
		if err := workflow.ExecuteActivity(actx, a.VerifyClaims, activities.VerifyInput{
			TenantID: b.in.TenantID, TokenID: tokenID, ClaimIDs: chunk,
			LeaseOwner: b.in.LeaseOwner, Final: final, Grace: b.s.RecheckDelay, StoredOnly: true,
		}).Get(ctx, &r); err != nil {
			workflow.GetLogger(ctx).Warn("stored-evidence check failed", "claims", len(chunk), "error", err)
			r = failedAs(chunk, graph.Transient, "stored-evidence check failed")
		}
		b.count(r)
		results = append(results, r)
	}
	return results
}

// storedPass decides claims from stored evidence alone and returns those
// it could not decide: absent, or not checked (a failed activity decides
// nothing: its claims are read instead).
func (b *tenantBatch) storedPass(ctx workflow.Context, tokenID string, ids []int64, final bool) (rest []int64) {
	for _, r := range b.storedChunks(ctx, tokenID, ids, final) {
		rest = append(rest, r.Absent...)
		for _, f := range r.Deferred {
			rest = append(rest, f.ClaimID)
		}
	}
	return rest
}

// failedAs is a chunk none of whose claims could be checked: every claim a
// failure of one class (transient ones are tried again, the others handed
// back).
func failedAs(ids []int64, class graph.Class, reason string) activities.VerifyResult {
	var r activities.VerifyResult
	for _, id := range ids {
		r.Deferred = append(r.Deferred, activities.Failed{ClaimID: id, Class: class, Reason: reason})
	}
	return r
}

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
		b.holdLease(ctx, workflow.Now(ctx).Add(b.s.RecheckDelay))
		if err := workflow.Sleep(ctx, b.s.RecheckDelay); err != nil {
			return ids, nil
		}
		ids = b.storedPass(ctx, tokenID, ids, true)
	}
	return nil, nil
}
