package workflows

import (
	"encoding/json"
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
)

// decide settles claims in a mode on a token and returns those without
// evidence on their first check. Claims of risky users (a recent false
// claim) are verified one by one whatever the mode.
func (b *tenantBatch) decide(ctx workflow.Context, mode, tokenID string, ids, risky []int64) ([]int64, error) {
	switch mode {
	case ModeHonor:
		absent := b.verifyWithRetries(ctx, tokenID, risky)
		// Webhooks and other batches' reads prove claims at no call: only
		// claims without such proof are approved on honor. (Not read: under
		// a backlog the reads are what is short.)
		ids = b.storedPass(ctx, tokenID, ids, false)
		return absent, b.approveOnHonor(ctx, ids)
	case ModeSample:
		absent := b.verifyWithRetries(ctx, tokenID, risky)
		more, err := b.sample(ctx, tokenID, ids)
		return append(absent, more...), err
	}
	return b.verifyWithRetries(ctx, tokenID, append(slices.Clone(risky), ids...)), nil
}

// verifyWithRetries runs claims' first check, retrying transient failures
// for a few passes; it returns the claims that had no evidence.
func (b *tenantBatch) verifyWithRetries(ctx workflow.Context, tokenID string, ids []int64) (absent []int64) {
	return b.checkWithRetries(ctx, tokenID, ids, false)
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
	n, err := b.record(ctx, decisions)
	b.progress.ApprovedOnHonor += n
	return err
}

// record stores verdicts the workflow decided (by rule, sample or honor)
// and returns how many took effect.
func (b *tenantBatch) record(ctx workflow.Context, decisions []store.Decision) (int, error) {
	var a *activities.Activities
	var n int
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, storeActivityOptions), a.RecordVerdicts, decisions).Get(ctx, &n)
	return n, err
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
	recorded, err := b.record(ctx, decisions)
	b.progress.ApprovedBySample = recorded
	return absent, err
}
