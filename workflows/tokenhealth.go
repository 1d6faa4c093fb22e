package workflows

import (
	"cmp"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// Token health: a Schedule runs it daily (platform time).
const (
	TokenHealthWorkflow   = "TokenHealth"
	TokenHealthScheduleID = "token-health"
)

// TokenHealthInput configures a check.
type TokenHealthInput struct {
	// ExpiringWithin (Meta's time): tokens expiring sooner are reported
	// expiring; 0 means 7 days.
	ExpiringWithin time.Duration `json:",omitempty"`
	ChunkSize      int           `json:",omitempty"` // tokens per activity; default 20
	// MaxWait bounds the wait for the app token's permits; what is still
	// unchecked then waits for the next run. Default 10 minutes.
	MaxWait time.Duration `json:",omitempty"`
}

// TokenHealthReport is the run's result: each token's state as recorded,
// and the tokens left for the next run.
type TokenHealthReport struct {
	Checked   []activities.TokenStatus
	Unchecked []activities.TokenRef `json:",omitempty"`
	Calls     int
}

// TokenHealth asks /debug_token about every token, with the app token's
// permits (its own limiter, `limiter/app`), records each token's health in
// the store, and tells the Governor about tenants' own tokens: invalid,
// revoked or missing scopes move the tenant to the platform token;
// expiring raises a warning until the tenant reconnects; healthy clears
// both. A token Meta could not be asked about keeps its state.
func TokenHealth(ctx workflow.Context, in TokenHealthInput) (TokenHealthReport, error) {
	if in.ChunkSize <= 0 {
		in.ChunkSize = 20
	}
	if in.MaxWait <= 0 {
		in.MaxWait = 10 * time.Minute
	}
	var a *activities.Activities
	log := workflow.GetLogger(ctx)
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	gctx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	var report TokenHealthReport

	var pending []activities.TokenRef
	if err := workflow.ExecuteActivity(sctx, a.TokensToCheck).Get(ctx, &pending); err != nil {
		return report, err
	}
	deadline := workflow.Now(ctx).Add(in.MaxWait)
	var deferred []activities.TokenRef
	for len(pending) > 0 && workflow.Now(ctx).Before(deadline) {
		chunk := pending[:min(in.ChunkSize, len(pending))]
		var resp limiter.ReserveResponse
		if err := workflow.ExecuteActivity(sctx, a.ReservePermits, activities.ReserveInput{TokenID: store.AppTokenID, N: len(chunk), Class: limiter.Verify}).Get(ctx, &resp); err != nil {
			log.Warn("app token reservation failed", "error", err)
			break
		}
		if len(resp.Permits) == 0 {
			wait := resp.RetryAt.Sub(workflow.Now(ctx))
			if resp.Paused || wait <= 0 {
				wait = time.Minute
			}
			if err := workflow.Sleep(ctx, wait); err != nil {
				return report, err
			}
			continue
		}
		chunk = chunk[:min(len(chunk), len(resp.Permits))]
		var r activities.TokenHealthResult
		err := workflow.ExecuteActivity(gctx, a.CheckTokenHealth, activities.TokenHealthInput{
			Tokens: chunk, Permits: resp.Permits, Guard: resp.Guard, ExpiringWithin: in.ExpiringWithin,
		}).Get(ctx, &r)
		if err != nil {
			log.Warn("token health chunk failed", "error", err)
			break
		}
		report.Calls += r.Calls
		report.Checked = append(report.Checked, r.Checked...)
		deferred = append(deferred, r.Deferred...)
		pending = append(r.NeedPermits, pending[len(chunk):]...)
		for _, st := range r.Checked {
			if st.Tenant == "" {
				if st.State != store.TokenHealthy {
					log.Error("platform token not healthy", "TokenID", st.TokenID, "state", st.State, "reason", st.Reason)
				}
				continue
			}
			alert := policy.TokenAlert{TokenID: st.TokenID, Tenant: st.Tenant, State: string(st.State), Reason: "health check: " + cmp.Or(st.Reason, string(st.State)), ExpiresAt: st.ExpiresAt}
			alert.Broken = st.State == store.TokenInvalid || st.State == store.TokenRevoked || st.State == store.TokenMissingScopes
			if err := workflow.SignalExternalWorkflow(ctx, policy.GovernorWorkflowID, "", policy.SignalTokenAlert, alert).Get(ctx, nil); err != nil {
				log.Warn("governor not told of a token's health", "TokenID", st.TokenID, "error", err)
			}
		}
	}
	report.Unchecked = append(deferred, pending...)
	return report, nil
}
