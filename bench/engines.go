package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/webhook"
	"github.com/socialproof/verifier/workflows"
)

// benchEngine runs against a system until stopped.
type benchEngine interface {
	start(ctx context.Context, s *system, speed float64) error
	stop()
}

// ours is the engine: worker, Schedule, Governor, audit and the Meta
// webhook receiver, on embedded defaults. tune adjusts the configuration
// for a scenario (drain dispatches more often).
type ours struct {
	tune  func(*config.Config)
	w     worker.Worker
	stops []func()
}

func (o *ours) start(ctx context.Context, s *system, speed float64) error {
	cfg := config.Default()
	cfg.Speed = speed
	if cfg.Scaled(cfg.Interval) < time.Second {
		// The Schedule fires at most once a (wall) second: dispatch less
		// often, in proportionally larger batches, so the engine claims at
		// its configured rate (500 a minute by default).
		stretched := time.Duration(speed) * time.Second
		cfg.BatchSize = min(10000, int(int64(cfg.BatchSize)*int64(stretched)/int64(cfg.Interval)))
		cfg.BacklogBatchSize = min(10000, int(int64(cfg.BacklogBatchSize)*int64(stretched)/int64(cfg.Interval)))
		cfg.Interval = stretched
	}
	if o.tune != nil {
		o.tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	o.w = worker.New(s.temporal, workflows.TaskQueue, worker.Options{})
	engine.New(engine.Deps{
		Store:           s.st,
		Graph:           graph.New(graph.Config{BaseURL: s.simURL, Version: "v21.0", AppID: s.sim.World().AppID, AppSecret: secret.New(appSecret)}),
		PlatformTokenID: s.tenants.PlatformToken,
		Temporal:        s.temporal,
		Speed:           speed,
		UserRiskTTL:     cfg.Scaled(cfg.UserRiskTTL),
	}).Register(o.w)
	if err := o.w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	o.stops = append(o.stops, o.w.Stop)
	const verifyToken = "bench-verify-token"
	receiver := &webhook.Handler{AppSecret: secret.New(appSecret), VerifyToken: secret.New(verifyToken), Sink: webhook.StoreSink{Store: s.st}}
	hookURL, stopHooks := serveHTTP(receiver)
	o.stops = append(o.stops, stopHooks)
	if err := s.sim.Subscribe(metasim.WebhookOptions{URL: hookURL, VerifyToken: verifyToken, Shape: metasim.ShapeMixed}); err != nil {
		return fmt.Errorf("subscribe metasim's webhooks: %w", err)
	}
	if _, err := workflows.EnsureSearchAttributes(ctx, s.temporal, "default"); err != nil {
		return err
	}
	if _, err := workflows.EnsureRunning(ctx, s.temporal, cfg); err != nil {
		return err
	}
	if _, err := workflows.EnsureSchedule(ctx, s.temporal, workflows.NewScheduleConfig(cfg)); err != nil {
		return err
	}
	return nil
}

func (o *ours) stop() {
	for i := len(o.stops) - 1; i >= 0; i-- {
		o.stops[i]()
	}
	o.stops = nil
}

// seedBaseline does exactly what the user's plan says: once a (simulated)
// minute, claim the 500 oldest pending claims; a premium tenant's claims
// are each verified with one call on its own token; a standard tenant's
// batch has 1% verified with one call each on the platform token, and if
// 85% of the sample passes the rest is approved; above 20,000 arrivals an
// hour, standard claims are approved on honor. No grouping, no webhooks,
// no limiter, no audit. A call Meta refuses leaves its claim pending for
// the next run. Kinds no API can prove get the verdict our engine gives
// them (unverifiable), so both engines decide the same claims.
type seedBaseline struct {
	cancel context.CancelFunc
	done   chan struct{}
}

const (
	baselineBatch     = 500
	baselineSample    = 0.01
	baselinePass      = 0.85
	baselineHonorRate = 20000 // arrivals an hour
	baselineOwner     = "seed-baseline"
)

func (b *seedBaseline) start(ctx context.Context, s *system, speed float64) error {
	ctx, b.cancel = context.WithCancel(ctx)
	b.done = make(chan struct{})
	client := graph.New(graph.Config{BaseURL: s.simURL, Version: "v21.0", AppID: s.sim.World().AppID, AppSecret: secret.New(appSecret)})
	rng := rand.New(rand.NewPCG(1, 2))
	every := time.Duration(float64(time.Minute) / speed)
	go func() {
		defer close(b.done)
		var totals []int // claims ever submitted, at each run: arrivals per hour are the last 60 runs' difference
		for tick := time.NewTicker(every); ; {
			b.run(ctx, s, client, rng, &totals)
			select {
			case <-ctx.Done():
				tick.Stop()
				return
			case <-tick.C:
			}
		}
	}()
	return nil
}

func (b *seedBaseline) stop() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
}

// run is one cron run of the plan.
func (b *seedBaseline) run(ctx context.Context, s *system, client *graph.Client, rng *rand.Rand, totals *[]int) {
	// The plan's arrival rate: claims submitted over the last hour (60 runs).
	stats, err := s.st.Stats(ctx)
	if err != nil {
		return
	}
	total := 0
	for _, st := range stats {
		total += st.Pending + st.Leased
		for _, n := range st.Decided {
			total += n
		}
	}
	*totals = append(*totals, total)
	hourAgo := max(0, len(*totals)-61)
	honor := total-(*totals)[hourAgo] > baselineHonorRate

	claims, err := s.st.Claim(ctx, store.ClaimParams{Owner: baselineOwner, Limit: baselineBatch, TTL: time.Hour, Now: time.Now()})
	if err != nil || len(claims) == 0 {
		return
	}

	byTenant := map[string][]store.Claim{}
	var order []string
	for _, c := range claims {
		if byTenant[c.Tenant] == nil {
			order = append(order, c.Tenant)
		}
		byTenant[c.Tenant] = append(byTenant[c.Tenant], c)
	}
	var decisions []store.Decision
	var retry []store.Deferral
	var mu sync.Mutex
	decide := func(c store.Claim, verdict, method string) {
		mu.Lock()
		decisions = append(decisions, store.Decision{ClaimID: c.ID, Verdict: verdict, Method: method, Evidence: "{}"})
		mu.Unlock()
	}
	later := func(c store.Claim, reason string) { // back to pending, for the next run
		mu.Lock()
		retry = append(retry, store.Deferral{ClaimID: c.ID, NotBefore: time.Now(), Reason: "seed-baseline: " + reason})
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, id := range order {
		tenant, err := s.st.Tenant(ctx, id)
		if err != nil {
			continue
		}
		batch := byTenant[id]
		wg.Go(func() {
			tokenID := s.tenants.PlatformToken
			premium := tenant.Tier == store.TierPremium
			if premium && tenant.TokenID != "" {
				tokenID = tenant.TokenID
			}
			sess, err := session(ctx, s, client, tokenID)
			if err != nil {
				return
			}
			// verify makes the plan's one call; ok is false when Meta refused it.
			verify := func(c store.Claim) (verdict string, ok bool) {
				found, err := checkOnce(sess, tenant, c)
				switch {
				case err == errUnverifiable:
					return store.VerdictUnverifiable, true
				case err != nil:
					later(c, err.Error())
					return "", false
				case found:
					return store.VerdictVerified, true
				}
				return store.VerdictRejected, true
			}
			var verifiable []store.Claim
			for _, c := range batch {
				if !c.Kind.Verifiable() {
					decide(c, store.VerdictUnverifiable, "rule")
				} else {
					verifiable = append(verifiable, c)
				}
			}
			switch {
			case premium:
				for _, c := range verifiable {
					if v, ok := verify(c); ok {
						decide(c, v, "graph")
					}
				}
			case honor:
				for _, c := range verifiable {
					decide(c, store.VerdictApprovedOnHonor, "honor")
				}
			default:
				n := int(math.Ceil(float64(len(verifiable)) * baselineSample))
				picked := rng.Perm(len(verifiable))[:n]
				inSample := map[int]bool{}
				passed, checked := 0, 0
				for _, i := range picked {
					inSample[i] = true
					c := verifiable[i]
					v, ok := verify(c)
					if !ok {
						continue
					}
					checked++
					if v == store.VerdictVerified {
						passed++
					}
					decide(c, v, "graph")
				}
				if checked == 0 || float64(passed) < baselinePass*float64(checked) {
					// The sample failed (or could not be checked): the rest
					// waits for the next run's sample.
					for i, c := range verifiable {
						if !inSample[i] {
							later(c, "sample failed")
						}
					}
					return
				}
				for i, c := range verifiable {
					if !inSample[i] {
						decide(c, store.VerdictApprovedBySample, "sample")
					}
				}
			}
		})
	}
	wg.Wait()
	if len(decisions) > 0 {
		_, _ = s.st.Decide(ctx, decisions, time.Now())
	}
	if len(retry) > 0 {
		_, _ = s.st.Defer(ctx, baselineOwner, retry)
	}
}

var errUnverifiable = fmt.Errorf("no Graph API read proves this kind")

// checkOnce is the plan's one call for a claim: the first page of the
// target's edge (no paging, no stored evidence), or the mention's media.
func checkOnce(s *graph.Session, tenant store.Tenant, c store.Claim) (bool, error) {
	if edge, fields, ok := activities.ReadOf(c.Kind); ok {
		page, err := s.Edge(c.Target, edge, fields).Next()
		if err != nil {
			return false, err
		}
		_, m := evidence.Find(c.Claim, page)
		return m == evidence.NoMatch, nil
	}
	if c.Kind == claim.IGMention {
		action, _, err := s.MentionedMedia(tenant.InstagramAccount(), c.Target)
		if err != nil {
			return false, err
		}
		return evidence.Check(c.Claim, action) == evidence.NoMatch, nil
	}
	return false, errUnverifiable
}

func session(ctx context.Context, s *system, client *graph.Client, tokenID string) (*graph.Session, error) {
	tok, err := s.st.Token(ctx, tokenID)
	if err != nil {
		return nil, err
	}
	value, err := secret.Resolve(tok.SecretRef)
	if err != nil {
		return nil, err
	}
	return client.Session(ctx, value), nil
}
