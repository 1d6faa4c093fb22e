package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/webhook"
	"github.com/socialproof/verifier/limiter"
)

// engineCollector reads the engine's figures at scrape time: the task
// store's counts, the Governor's and each limiter's state (queries), and the
// webhook receiver's counters. Nothing is kept between scrapes, so every
// worker reports the same store and Temporal state.
type engineCollector struct {
	store    store.Store
	temporal client.Client
	webhooks *webhook.Handler // nil: webhooks not served here
	log      *zap.Logger
	timeout  time.Duration
}

var (
	descClaims     = prometheus.NewDesc("verifier_claims_open", "Open claims by tenant and status (pending, leased).", []string{"tenant", "status"}, nil)
	descQuarantine = prometheus.NewDesc("verifier_claims_quarantined", "Poison claims (their check panicked) out of the queue by tenant, neither open nor decided, until an operator releases them (starter quarantine).", []string{"tenant"}, nil)
	descVerdicts   = prometheus.NewDesc("verifier_claims_decided", "Decided claims by tenant and current verdict.", []string{"tenant", "verdict"}, nil)
	descVerdictsBy = prometheus.NewDesc("verifier_verdicts_total", "Verdicts given, by tenant, claim kind, method and verdict; a revocation counts once more under verdict revoked, method audit. Kept in the store: every worker reports the same value.", []string{"tenant", "kind", "method", "verdict"}, nil)
	descAudited    = prometheus.NewDesc("verifier_claims_audited", "Provisional approvals an audit confirmed or revoked, by tenant.", []string{"tenant"}, nil)
	descAuditQueue = prometheus.NewDesc("verifier_audit_backlog", "Provisional approvals waiting for their audit.", nil, nil)
	descMode       = prometheus.NewDesc("verifier_mode", "1 for the mode standard tenants run in now (tenant=\"*\") and for each operator override.", []string{"tenant", "mode"}, nil)
	descOpenStd    = prometheus.NewDesc("verifier_governor_open_standard", "Standard tenants' open claims at the last load report (the backlog rule's input).", nil, nil)
	descArrivals   = prometheus.NewDesc("verifier_governor_arrivals_per_hour", "Claims arriving per platform hour, over the last 10 platform minutes.", nil, nil)
	descWarning    = prometheus.NewDesc("verifier_queue_warning", "1 while the Governor's queue warning is raised: above queue_warning open claims, until they fall to queue_clear.", nil, nil)
	descBroken     = prometheus.NewDesc("verifier_token_broken", "1 for a tenant token the Governor holds as broken.", []string{"token", "tenant"}, nil)
	descTokenState = prometheus.NewDesc("verifier_token_state", "1 for each token's health state as last recorded (healthy, expiring, missing_scopes, invalid, revoked, unknown): by the token-health check, a 190 seen in verification, or Meta's deauthorization callback.", []string{"token", "tenant", "state"}, nil)
	descExpiring   = prometheus.NewDesc("verifier_token_expiring", "1 for a tenant token the Governor warns about: it expires soon and the tenant must reconnect it.", []string{"token", "tenant"}, nil)
	descExpiresAt  = prometheus.NewDesc("verifier_token_expires_at_seconds", "When the token expires (unix seconds, Meta's clock), or its data access if sooner; absent for tokens that never expire.", []string{"token", "tenant"}, nil)
	descUsed       = prometheus.NewDesc("verifier_limiter_permits_in_window", "Permits granted in the token's budget window ending now.", []string{"token"}, nil)
	descBudget     = prometheus.NewDesc("verifier_limiter_budget_calls", "The token's call budget per window.", []string{"token"}, nil)
	descQueued     = prometheus.NewDesc("verifier_limiter_permits_queued", "Permits granted for later, by class (verify, audit).", []string{"token", "class"}, nil)
	descUsage      = prometheus.NewDesc("verifier_token_usage_percent", "Meta's last reported usage of the token (X-App-Usage / X-Business-Use-Case-Usage), percent.", []string{"token"}, nil)
	descThrottled  = prometheus.NewDesc("verifier_token_throttled", "1 when Meta's last report on the token was a throttle, or the limiter holds it blocked.", []string{"token"}, nil)
	descPaused     = prometheus.NewDesc("verifier_limiter_paused", "1 while an operator holds the token's limiter paused.", []string{"token"}, nil)
	descWebhooks   = prometheus.NewDesc("verifier_webhook_deliveries_total", "Meta webhook deliveries by outcome.", []string{"outcome"}, nil)
	descActions    = prometheus.NewDesc("verifier_webhook_actions_total", "Actions in accepted webhook deliveries (new: not known before).", []string{"kind"}, nil)
	descScrapeErr  = prometheus.NewDesc("verifier_scrape_errors", "Sources that could not be read during this scrape (store, governor, limiter).", []string{"source"}, nil)
)

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClaims, descQuarantine, descVerdicts, descVerdictsBy, descAudited, descAuditQueue, descMode, descOpenStd, descArrivals,
		descWarning, descBroken, descTokenState, descExpiring, descExpiresAt, descUsed, descBudget, descQueued, descUsage, descThrottled, descPaused, descWebhooks, descActions, descScrapeErr} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	failed := map[string]float64{"store": 0, "governor": 0, "limiter": 0}
	defer func() {
		for source, n := range failed {
			gauge(descScrapeErr, n, source)
		}
	}()
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}

	if stats, err := c.store.Stats(ctx); err != nil {
		c.log.Warn("metrics: store stats", zap.Error(err))
		failed["store"]++
	} else {
		backlog := 0
		for _, s := range stats {
			gauge(descClaims, float64(s.Pending), s.Tenant, store.StatusPending)
			gauge(descClaims, float64(s.Leased), s.Tenant, store.StatusLeased)
			gauge(descQuarantine, float64(s.Quarantined), s.Tenant)
			for verdict, n := range s.Decided {
				gauge(descVerdicts, float64(n), s.Tenant, verdict)
			}
			gauge(descAudited, float64(s.Audited), s.Tenant)
			// Only audits set audited_at: confirming a provisional approval
			// (it keeps its verdict) or revoking it. So the approvals still
			// waiting are all approvals less the confirmed ones, from the
			// counts already read, with no scan of the queue.
			confirmed := s.Audited - s.Decided[store.VerdictRevoked]
			backlog += s.Decided[store.VerdictApprovedBySample] + s.Decided[store.VerdictApprovedOnHonor] - confirmed
		}
		gauge(descAuditQueue, float64(backlog))
	}

	if counts, err := c.store.VerdictCounts(ctx); err != nil {
		c.log.Warn("metrics: verdict counts", zap.Error(err))
		failed["store"]++
	} else {
		for _, v := range counts {
			counter(descVerdictsBy, v.N, v.Tenant, v.Kind, v.Method, v.Verdict)
		}
	}

	if c.temporal != nil {
		var g governor.View
		if v, err := c.temporal.QueryWorkflow(ctx, governor.WorkflowID, "", governor.QueryState); err != nil || v.Get(&g) != nil {
			failed["governor"]++
		} else {
			gauge(descMode, 1, governor.AllTenants, string(g.StandardMode))
			for tenant, mode := range g.Overrides {
				gauge(descMode, 1, tenant, string(mode))
			}
			gauge(descOpenStd, float64(g.OpenStandard))
			gauge(descArrivals, g.ArrivalPerHour)
			gauge(descWarning, b2f(g.QueueWarning))
			for _, b := range g.BrokenTokens {
				gauge(descBroken, 1, b.TokenID, b.Tenant)
			}
			for _, e := range g.ExpiringTokens {
				gauge(descExpiring, 1, e.TokenID, e.Tenant)
			}
		}
	}
	tokens, err := c.store.Tokens(ctx)
	if err != nil {
		c.log.Warn("metrics: tokens", zap.Error(err))
		failed["store"]++
	}
	tenants, err := c.store.Tenants(ctx)
	if err != nil {
		c.log.Warn("metrics: tenants", zap.Error(err))
		failed["store"]++
	}
	owners := store.TokenTenants(tokens, tenants) // "" for the platform token
	for _, tk := range tokens {
		if tk.ID == store.AppTokenID {
			continue
		}
		gauge(descTokenState, 1, tk.ID, owners[tk.ID], string(tk.Health.State))
		if at := tk.Health.ExpiresFirst(); !at.IsZero() {
			gauge(descExpiresAt, float64(at.Unix()), tk.ID, owners[tk.ID])
		}
	}
	if c.temporal != nil {
		for _, tk := range tokens {
			var st limiter.State
			v, err := c.temporal.QueryWorkflow(ctx, limiter.WorkflowID(tk.ID), "", limiter.QueryState)
			var notStarted *serviceerror.NotFound
			if errors.As(err, &notStarted) {
				continue // a limiter starts with its token's first reservation
			}
			if err != nil || v.Get(&st) != nil {
				failed["limiter"]++
				continue
			}
			gauge(descUsed, float64(st.UsedInWindow), tk.ID)
			gauge(descBudget, float64(st.Budget.Calls), tk.ID)
			gauge(descQueued, float64(st.QueuedVerify), tk.ID, "verify")
			gauge(descQueued, float64(st.QueuedAudit), tk.ID, "audit")
			gauge(descPaused, b2f(st.Paused), tk.ID)
			throttled := st.BlockedUntil.After(time.Now())
			if st.LastReport != nil {
				if st.LastReport.UsagePercent >= 0 {
					gauge(descUsage, float64(st.LastReport.UsagePercent), tk.ID)
				}
				throttled = throttled || st.LastReport.Throttled
			}
			gauge(descThrottled, b2f(throttled), tk.ID)
		}
	}

	if c.webhooks != nil {
		s := c.webhooks.Stats()
		for outcome, n := range map[string]int64{"accepted": s.Accepted, "refused": s.Refused, "malformed": s.Malformed, "too_large": s.TooLarge, "failed": s.Failed} {
			counter(descWebhooks, n, outcome)
		}
		counter(descActions, s.Actions, "all")
		counter(descActions, s.NewActions, "new")
	}
}

// newGraphCallCounter counts this worker's Graph API calls by token and
// outcome (Activities.OnGraphCall). Unlike the collector's figures it lives
// in the process: sum it over workers.
func newGraphCallCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verifier_graph_calls_total",
		Help: "Graph API calls this worker made, by token and outcome (ok, or the error class: transient, throttled, token_broken, permission, not_found, permanent).",
	}, []string{"token", "outcome"})
}

// callOutcome is a Graph call's outcome label: "ok", or its error's class.
func callOutcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(graph.ClassOf(err))
}
