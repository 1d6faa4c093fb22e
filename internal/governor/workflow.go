package governor

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ModeKey is the VerificationMode search attribute (Keyword): the standard
// tenants' mode on the Governor, a batch's mode on each TenantBatch.
var ModeKey = temporal.NewSearchAttributeKeyKeyword("VerificationMode")

// changeBacklogRule versions the Governor's default backlog rule (auto
// verifies until standard claims back up; see LoadThresholds).
const changeBacklogRule = "backlog-rule"

// defaultProbeEvery is how often (platform time) a broken tenant token is
// tried again.
const defaultProbeEvery = 5 * time.Minute

// Workflow is the Governor (type WorkflowType, id WorkflowID): the
// platform's verification mode. It takes the Dispatcher's load report each
// run (an Update), switches standard tenants between verifying and honor
// with hysteresis, answers each tenant's mode, and takes operators'
// set-mode and set-thresholds signals. Broken premium tokens move
// their tenants to the platform token until a probe finds them working.
// Every change is in its history: the Update's result or the signal, and a
// memo upsert with the reason.
func Workflow(ctx workflow.Context, in Start) error {
	g, err := NewState(in)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), "BadInput", err)
	}
	if in.Carried == nil && workflow.GetVersion(ctx, changeBacklogRule, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		g.UseArrivalRule() // started before the backlog rule: replay as it ran
	}
	log := workflow.GetLogger(ctx)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (View, error) {
		return g.View(), nil
	}); err != nil {
		return err
	}
	publish := func(changes ...ModeChange) {
		for _, c := range changes {
			log.Info("mode changed", "tenant", c.Tenant, "from", c.From, "to", c.To, "by", c.By, "reason", c.Reason,
				"arrivalPerHour", c.ArrivalPerHour, "open", c.Open)
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{"state": g.View()}); err != nil {
			log.Warn("memo not updated", "error", err)
		}
		if err := workflow.UpsertTypedSearchAttributes(ctx, ModeKey.ValueSet(string(g.StandardMode()))); err != nil {
			log.Warn("search attribute not updated", "error", err)
		}
	}

	if err := workflow.SetUpdateHandler(ctx, UpdateReportLoad, func(ctx workflow.Context, r LoadReport) (Directive, error) {
		d, warn := g.Report(workflow.Now(ctx), r)
		if warn != "" {
			if g.QueueWarning {
				log.Warn("queue warning", "open", r.Open, "threshold", g.Thresholds.QueueWarning, "message", warn)
			} else {
				log.Info("queue warning cleared", "open", r.Open, "message", warn)
			}
		}
		if len(d.Changes) > 0 || warn != "" {
			publish(d.Changes...)
		}
		return d, nil
	}); err != nil {
		return err
	}

	setModeCh := workflow.GetSignalChannel(ctx, SignalSetMode)
	thresholdsCh := workflow.GetSignalChannel(ctx, SignalSetThresholds)
	alertCh := workflow.GetSignalChannel(ctx, SignalTokenAlert)
	drain := func() {
		for {
			var sm SetMode
			var th LoadThresholds
			var alert TokenAlert
			switch {
			case setModeCh.ReceiveAsync(&sm):
				c, err := g.SetMode(workflow.Now(ctx), sm)
				if err != nil {
					log.Error("set-mode refused", "error", err)
					publish()
					continue
				}
				publish(c)
			case thresholdsCh.ReceiveAsync(&th):
				next, err := g.SetThresholds(th)
				if err != nil {
					log.Error("set-thresholds refused", "error", err)
				} else {
					log.Info("thresholds set", "honorAbove", next.HonorAbove, "honorBelow", next.HonorBelow,
						"honorOpenAbove", next.HonorOpenAbove, "honorOpenBelow", next.HonorOpenBelow,
						"minDwell", time.Duration(next.MinDwell), "queueWarning", next.QueueWarning, "queueClear", next.QueueClear)
				}
				publish()
			case alertCh.ReceiveAsync(&alert):
				c, changed := g.TokenAlert(workflow.Now(ctx), alert)
				// Warnings change no command for alerts without a State
				// (the only ones before token health), so histories replay.
				warned := g.TokenWarning(alert)
				if warned && alert.State == TokenExpiring {
					log.Warn("tenant token expiring; the tenant must reconnect it", "TenantID", alert.Tenant, "TokenID", alert.TokenID, "reason", alert.Reason)
				}
				switch {
				case changed:
					if alert.Broken {
						log.Error("tenant token broken; the tenant falls back to the platform token", "TenantID", alert.Tenant, "TokenID", alert.TokenID, "reason", alert.Reason)
					}
					publish(c)
				case warned:
					publish()
				}
			default:
				return
			}
		}
	}
	publish()

	probeEvery := time.Duration(in.ProbeEvery)
	if probeEvery <= 0 {
		probeEvery = defaultProbeEvery
	}
	probeEvery = max(time.Second, time.Duration(float64(probeEvery)/g.Speed))
	runStart := g.Reports
	continueAsNew := func() bool {
		return workflow.GetInfo(ctx).GetContinueAsNewSuggested() || (in.RunLength > 0 && g.Reports-runStart >= in.RunLength)
	}
	nextProbe := workflow.Now(ctx).Add(probeEvery)
	for {
		// Wake for signals, continue-as-new, or the next probe of a broken token.
		timerCtx, cancel := workflow.WithCancel(ctx)
		probeDue := false
		if len(g.Broken) > 0 {
			_ = workflow.NewTimer(timerCtx, max(0, nextProbe.Sub(workflow.Now(ctx)))) // wakes the Await below
		}
		err := workflow.Await(ctx, func() bool {
			probeDue = len(g.Broken) > 0 && !workflow.Now(ctx).Before(nextProbe)
			return setModeCh.Len() > 0 || thresholdsCh.Len() > 0 || alertCh.Len() > 0 || continueAsNew() || probeDue
		})
		cancel()
		if err != nil {
			return err
		}
		drain()
		if probeDue {
			probeTokens(ctx, g, publish)
			nextProbe = workflow.Now(ctx).Add(probeEvery)
		}
		if continueAsNew() {
			// Finish running Updates and take in every delivered signal, so
			// nothing is lost across the new run.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			drain()
			next := in
			next.Carried = g
			return workflow.NewContinueAsNewError(ctx, WorkflowType, next)
		}
	}
}

// probeTokens tries each broken token on its tenant's account; one that
// works again takes its tenant back.
func probeTokens(ctx workflow.Context, g *State, publish func(...ModeChange)) {
	actx := workflow.WithActivityOptions(ctx, probeActivityOptions)
	for _, b := range g.BrokenTokens() {
		var res TokenCheck
		if err := workflow.ExecuteActivity(actx, ActivityCheckToken, TokenCheckInput{TokenID: b.TokenID, TenantID: b.Tenant}).Get(ctx, &res); err != nil {
			workflow.GetLogger(ctx).Warn("token probe failed", "TokenID", b.TokenID, "error", err)
			continue
		}
		if res.Works {
			if c, changed := g.TokenAlert(workflow.Now(ctx), TokenAlert{TokenID: b.TokenID, Tenant: b.Tenant, Reason: res.Detail}); changed {
				workflow.GetLogger(ctx).Info("tenant token works again; the tenant is back on its own token", "TenantID", b.Tenant, "TokenID", b.TokenID)
				publish(c)
			}
		}
	}
}

// probeActivityOptions: one Graph call; a failed probe is simply tried at
// the next probe time.
var probeActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
}
