package tokens

import (
	"cmp"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// Token health: a Schedule runs it daily (platform time).
const (
	HealthWorkflowType = "TokenHealth"
	HealthScheduleID   = "token-health"
)

// HealthInput configures a check.
type HealthInput struct {
	// ExpiringWithin (Meta's time): tokens expiring sooner are reported
	// expiring; 0 means 7 days.
	ExpiringWithin time.Duration `json:",omitempty"`
	ChunkSize      int           `json:",omitempty"` // tokens per activity; default 20
	// MaxWait bounds the wait for the app token's permits; what is still
	// unchecked then waits for the next run. Default 10 minutes.
	MaxWait time.Duration `json:",omitempty"`
}

// HealthReport is the run's result: each token's state as recorded, and
// the tokens left for the next run.
type HealthReport struct {
	Checked   []TokenStatus
	Unchecked []TokenRef `json:",omitempty"`
	Calls     int
}

// changePermitsInActivity versions CheckTokenHealth reserving its own
// permits: before it, the workflow reserved them (the ReservePermits
// activity) and handed them over.
const changePermitsInActivity = "permits-in-activity"

// HealthWorkflow asks /debug_token about every token, with the app token's
// permits (its own limiter, `limiter/app`), records each token's health in
// the store, and tells the Governor about tenants' own tokens: invalid,
// revoked or missing scopes move the tenant to the platform token;
// expiring raises a warning until the tenant reconnects; healthy clears
// both. A token Meta could not be asked about keeps its state.
func HealthWorkflow(ctx workflow.Context, in HealthInput) (HealthReport, error) {
	if in.ChunkSize <= 0 {
		in.ChunkSize = 20
	}
	if in.MaxWait <= 0 {
		in.MaxWait = 10 * time.Minute
	}
	var a *Activities
	log := workflow.GetLogger(ctx)
	sctx := workflow.WithActivityOptions(ctx, storeOptions)
	gctx := workflow.WithActivityOptions(ctx, checkOptions)
	var report HealthReport

	var pending []TokenRef
	if err := workflow.ExecuteActivity(sctx, a.TokensToCheck).Get(ctx, &pending); err != nil {
		return report, err
	}
	permitsInActivity := workflow.GetVersion(ctx, changePermitsInActivity, workflow.DefaultVersion, 1) == 1
	deadline := workflow.Now(ctx).Add(in.MaxWait)
	var deferred []TokenRef
	for len(pending) > 0 && workflow.Now(ctx).Before(deadline) {
		chunk := pending[:min(in.ChunkSize, len(pending))]
		if !permitsInActivity {
			// Runs from before: the workflow reserved the chunk's permits.
			var resp limiter.ReserveResponse
			if err := workflow.ExecuteActivity(sctx, "ReservePermits", limiter.ReserveInput{TokenID: store.AppTokenID, N: len(chunk), Class: limiter.Verify}).Get(ctx, &resp); err != nil {
				log.Warn("app token reservation failed", "error", err)
				break
			}
			if len(resp.Permits) == 0 {
				if err := workflow.Sleep(ctx, retryWait(resp.RetryAt.Sub(workflow.Now(ctx)), resp.Paused)); err != nil {
					return report, err
				}
				continue
			}
			chunk = chunk[:min(len(chunk), len(resp.Permits))]
		}
		var r HealthCheckResult
		err := workflow.ExecuteActivity(gctx, a.CheckTokenHealth, HealthCheckInput{Tokens: chunk, ExpiringWithin: in.ExpiringWithin}).Get(ctx, &r)
		if err != nil {
			log.Warn("token health chunk failed", "error", err)
			break
		}
		report.Calls += r.Calls
		report.Checked = append(report.Checked, r.Checked...)
		deferred = append(deferred, r.Deferred...)
		pending = append(r.NeedPermits, pending[len(chunk):]...)
		for _, st := range r.Checked {
			tellGovernor(ctx, st)
		}
		if permitsInActivity && len(r.NeedPermits) == len(chunk) {
			// Not one permit: wait for the limiter's time, durably.
			if err := workflow.Sleep(ctx, retryWait(r.RetryAt.Sub(workflow.Now(ctx)), r.Paused)); err != nil {
				return report, err
			}
		}
	}
	report.Unchecked = append(deferred, pending...)
	return report, nil
}

// retryWait is how long to wait for a limiter that gave no permit: until its
// time, or a minute when it is paused or gave none.
func retryWait(until time.Duration, paused bool) time.Duration {
	if paused || until <= 0 {
		return time.Minute
	}
	return until
}

// tellGovernor sends a tenant token's health to the Governor; the platform
// token's is only logged.
func tellGovernor(ctx workflow.Context, st TokenStatus) {
	log := workflow.GetLogger(ctx)
	if st.Tenant == "" {
		if st.State != store.TokenHealthy {
			log.Error("platform token not healthy", "TokenID", st.TokenID, "state", st.State, "reason", st.Reason)
		}
		return
	}
	alert := governor.TokenAlert{TokenID: st.TokenID, Tenant: st.Tenant, State: string(st.State), Reason: "health check: " + cmp.Or(st.Reason, string(st.State)), ExpiresAt: st.ExpiresAt}
	alert.Broken = st.State == store.TokenInvalid || st.State == store.TokenRevoked || st.State == store.TokenMissingScopes
	if err := workflow.SignalExternalWorkflow(ctx, governor.WorkflowID, "", governor.SignalTokenAlert, alert).Get(ctx, nil); err != nil {
		log.Warn("governor not told of a token's health", "TokenID", st.TokenID, "error", err)
	}
}

// storeOptions: store calls are quick; a database outage is retried until
// it is over.
var storeOptions = workflow.ActivityOptions{
	StartToCloseTimeout: time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
}

// checkOptions: a chunk of debug_token calls, paced by the app token's
// limiter; it heartbeats per token.
var checkOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 5 * time.Minute,
	HeartbeatTimeout:    time.Minute,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5},
}
