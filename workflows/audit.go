package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/limiter"
)

// Audit's contract: one long-running workflow, id `audit`.
const (
	AuditWorkflow   = "Audit"
	AuditWorkflowID = "audit"
	QueryAuditState = "state" // AuditState
)

// AuditInput starts the audit, or carries it over continue-as-new.
// Durations are wall-clock (already divided by the speed factor).
type AuditInput struct {
	BatchSize int           // claims per round; default 100
	ChunkSize int           // claims per VerifyClaims activity; default 25
	MinAge    time.Duration // approvals younger than this wait (Meta's data may lag); the grace delay
	Idle      time.Duration // wait when nothing is due or no spare permit is left; default 10s
	SkipFor   time.Duration // a claim that could not be checked waits this long; default 10 × Idle
	RunLength int64         `json:",omitempty"` // continue-as-new after this many rounds (0: when suggested)
	Carried   *AuditState   `json:",omitempty"`
}

// AuditState is the `state` query's answer and the memo: what the audit has
// done since it first started.
type AuditState struct {
	Confirmed int64 // provisional approvals proven by a Graph read
	Revoked   int64 // found false: revoked with the evidence of the read
	Calls     int64
	Rounds    int64
	Idle      string    `json:",omitempty"` // why the last round waited
	Skipped   []Skip    `json:",omitempty"` // claims the audit could not check lately
	LastAt    time.Time `json:",omitzero"`
}

// Skip is a claim set aside until Until (its token failed, say).
type Skip struct {
	ClaimID int64
	Until   time.Time
}

func (in AuditInput) withDefaults() AuditInput {
	if in.BatchSize <= 0 {
		in.BatchSize = 100
	}
	if in.ChunkSize <= 0 {
		in.ChunkSize = 25
	}
	if in.Idle <= 0 {
		in.Idle = 10 * time.Second
	}
	if in.SkipFor <= 0 {
		in.SkipFor = 10 * in.Idle
	}
	return in
}

// Audit re-verifies provisional approvals (approved_by_sample,
// approved_on_honor), oldest first, with the limiter's audit class: only
// permits verification leaves unused, so it never delays a batch. A proven
// approval is marked audited; a false one is revoked with the evidence of
// the read (the original verdict stays in the record) and its user becomes
// risky. It waits when nothing is due or no permit is spare.
func Audit(ctx workflow.Context, in AuditInput) error {
	in = in.withDefaults()
	st := AuditState{}
	if in.Carried != nil {
		st = *in.Carried
	}
	if err := workflow.SetQueryHandler(ctx, QueryAuditState, func() (AuditState, error) { return st, nil }); err != nil {
		return err
	}
	log := workflow.GetLogger(ctx)
	var a *activities.Activities
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	gctx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	runStart := st.Rounds
	permitsInActivity := workflow.GetVersion(ctx, changePermitsInActivity, workflow.DefaultVersion, 1) == 1
	memoRevoked, memoConfirmed := int64(-1), int64(-1)

	for {
		now := workflow.Now(ctx)
		st.Skipped = slices.DeleteFunc(st.Skipped, func(s Skip) bool { return !s.Until.After(now) })
		skip := make([]int64, len(st.Skipped))
		for i, s := range st.Skipped {
			skip[i] = s.ClaimID
		}
		var groups []activities.AuditGroup
		if err := workflow.ExecuteActivity(sctx, a.NextAudit, activities.NextAuditInput{Limit: in.BatchSize, MinAge: in.MinAge, Skip: skip}).Get(ctx, &groups); err != nil {
			return err
		}
		st.Rounds++
		st.Idle = ""
		if len(groups) == 0 {
			st.Idle = "nothing due"
		}
	round:
		for _, g := range groups {
			for start := 0; start < len(g.ClaimIDs); start += in.ChunkSize {
				chunk := g.ClaimIDs[start:min(start+in.ChunkSize, len(g.ClaimIDs))]
				if !permitsInActivity && !reserveLegacy(ctx, sctx, g.TokenID, len(chunk), &st) {
					break round
				}
				var r activities.VerifyResult
				err := workflow.ExecuteActivity(gctx, a.VerifyClaims, activities.VerifyInput{
					TenantID: g.TenantID, TokenID: g.TokenID, ClaimIDs: chunk, Class: limiter.Audit, Audit: true, Grace: in.MinAge,
				}).Get(ctx, &r)
				if err != nil {
					log.Warn("audit chunk failed", "TenantID", g.TenantID, "error", err)
					st.Idle = "audit chunk failed"
					break round
				}
				st.Confirmed += int64(r.Confirmed)
				st.Revoked += int64(r.Revoked)
				st.Calls += int64(r.Calls)
				st.LastAt = workflow.Now(ctx)
				stopped := false
				for _, f := range r.Deferred {
					st.Skipped = append(st.Skipped, Skip{ClaimID: f.ClaimID, Until: workflow.Now(ctx).Add(in.SkipFor)})
					if f.Class == graph.Throttled || f.Class == graph.TokenBroken {
						stopped = true
					}
				}
				switch {
				case permitsInActivity && r.Calls == 0 && len(r.NeedPermits) == len(chunk):
					st.Idle = "no spare permit on " + g.TokenID
					break round
				case len(r.NeedPermits) > 0 || stopped:
					st.Idle = "spare permits ran out on " + g.TokenID
					break round
				}
			}
		}
		if st.Revoked != memoRevoked || st.Confirmed != memoConfirmed {
			if err := workflow.UpsertMemo(ctx, map[string]any{"state": st}); err != nil {
				log.Warn("memo not updated", "error", err)
			}
			memoRevoked, memoConfirmed = st.Revoked, st.Confirmed
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() || (in.RunLength > 0 && st.Rounds-runStart >= in.RunLength) {
			next := in
			next.Carried = &st
			return workflow.NewContinueAsNewError(ctx, AuditWorkflow, next)
		}
		if st.Idle != "" {
			if err := workflow.Sleep(ctx, in.Idle); err != nil {
				return err
			}
		}
	}
}

// changePermitsInActivity versions VerifyClaims reserving the audit's
// permits itself: before it, the workflow reserved them (the ReservePermits
// activity) and waited for the first.
const changePermitsInActivity = "permits-in-activity"

// reserveLegacy is an audit round's reservation as runs from before
// permits-in-activity made it: a spare permit for each claim, waited for.
// It reports false (and why, in st) when the round stops.
func reserveLegacy(ctx, sctx workflow.Context, tokenID string, n int, st *AuditState) bool {
	var resp limiter.ReserveResponse
	if err := workflow.ExecuteActivity(sctx, "ReservePermits", limiter.ReserveInput{TokenID: tokenID, N: n, Class: limiter.Audit}).Get(ctx, &resp); err != nil {
		workflow.GetLogger(ctx).Warn("audit reservation failed", "TokenID", tokenID, "error", err)
		st.Idle = "reservation failed"
		return false
	}
	if len(resp.Permits) == 0 {
		st.Idle = "no spare permit on " + tokenID
		return false
	}
	if wait := resp.Permits[0].At.Sub(workflow.Now(ctx)); wait > 0 {
		_ = workflow.Sleep(ctx, wait)
	}
	return true
}
