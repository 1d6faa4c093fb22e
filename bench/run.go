package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/bench"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
)

// scenario is a named workload: how many claims arrive in each simulated
// minute, at what speed, and how long the run may go on after the last
// arrival.
type scenario struct {
	name, about string
	speed       float64
	backlog     int                  // claims pending before the engine starts
	minutes     int                  // simulated minutes with arrivals
	arrivals    func(minute int) int // claims submitted at the start of a simulated minute
	tail        time.Duration        // simulated time allowed after the last arrival (0: until nothing is pending or wallCap)
	wallCap     time.Duration        // stop after this much wall time whatever is pending (0: none)
}

// runOptions are the settings every run of a bench shares.
type runOptions struct {
	seed        int64
	dir         string
	databaseURL string
	temporalCLI string
	log         func(format string, args ...any)
}

// runEngine runs one engine through one scenario on a fresh system and
// measures it.
func runEngine(ctx context.Context, sc scenario, name string, eng benchEngine, o runOptions) (bench.EngineResult, error) {
	res := bench.EngineResult{Engine: name}
	sysOpts := systemOptions{seed: o.seed, speed: sc.speed, dir: filepath.Join(o.dir, sc.name+"-"+name), databaseURL: o.databaseURL}
	if _, isOurs := eng.(*ours); isOurs {
		sysOpts.temporalCLI = o.temporalCLI
	}
	s, err := startSystem(ctx, sysOpts)
	if err != nil {
		return res, err
	}
	defer s.close()
	kinds := map[string]bool{} // tenant/key → verifiable
	truth := map[string]bool{}
	if sc.backlog > 0 {
		n, err := submit(ctx, s, sc.backlog, kinds, truth)
		if err != nil {
			return res, err
		}
		res.Claims += n
	}
	if err := eng.start(ctx, s, sc.speed); err != nil {
		eng.stop()
		return res, fmt.Errorf("%s: start: %w", name, err)
	}
	minute := time.Duration(float64(time.Minute) / sc.speed)
	poll := min(time.Second, minute)
	start, simStart := time.Now(), s.sim.Now()
	var peakHeap uint64
	nextMinute := 0
	for {
		if err := ctx.Err(); err != nil {
			eng.stop()
			return res, errInterrupted
		}
		now := time.Now()
		for nextMinute < sc.minutes && !now.Before(start.Add(time.Duration(nextMinute)*minute)) {
			if n := sc.arrivals(nextMinute); n > 0 {
				submitted, err := submit(ctx, s, n, kinds, truth)
				if err != nil {
					eng.stop()
					return res, err
				}
				res.Claims += submitted
			}
			nextMinute++
		}
		pending, err := openClaims(ctx, s.st)
		if err != nil {
			eng.stop()
			return res, err
		}
		res.PeakPending = max(res.PeakPending, pending)
		m := int(now.Sub(start) / minute)
		if len(res.Timeline) == 0 || res.Timeline[len(res.Timeline)-1].Minute < m {
			res.Timeline = append(res.Timeline, bench.Sample{Minute: m, Pending: pending})
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
		arrived := nextMinute >= sc.minutes
		lastArrival := start.Add(time.Duration(max(0, sc.minutes-1)) * minute)
		if arrived && (pending == 0 || (sc.tail > 0 && now.After(lastArrival.Add(time.Duration(float64(sc.tail)/sc.speed))))) {
			break
		}
		if sc.wallCap > 0 && now.Sub(start) > sc.wallCap {
			o.log("  %s: stopped after %v of wall time with %d pending", name, sc.wallCap, pending)
			break
		}
		time.Sleep(poll)
	}
	wall := time.Since(start)
	hooks := s.sim.WebhookStats() // before stop cancels what is still queued
	res.WebhookEvents, res.WebhooksDelivered = hooks.Events, hooks.Delivered
	eng.stop()
	res.WallSeconds = wall.Seconds()
	res.PeakWorkerMemMB = float64(peakHeap) / (1 << 20)

	if err := measure(ctx, s, sc, simStart, start, wall, kinds, truth, &res); err != nil {
		return res, err
	}
	return res, nil
}

// submit generates n claims in metasim's world (the genuine ones act in it
// now) and submits them like the platform would.
func submit(ctx context.Context, s *system, n int, verifiable, truth map[string]bool) (int, error) {
	gen := s.sim.GenerateClaims(n, metasim.ClaimOptions{FraudRate: 0.1})
	claims := make([]claim.Claim, 0, len(gen))
	for _, g := range gen {
		c, err := claim.Parse(g.Line)
		if err != nil {
			return 0, fmt.Errorf("metasim generated a claim the parser refuses: %w", err)
		}
		claims = append(claims, c)
		verifiable[g.Tenant+"/"+g.Key] = c.Kind.Verifiable()
		truth[g.Tenant+"/"+g.Key] = g.Genuine
	}
	accepted := 0
	for from := 0; from < len(claims); from += 1000 {
		res, err := s.st.Submit(ctx, claims[from:min(from+1000, len(claims))], time.Now())
		if err != nil {
			return accepted, fmt.Errorf("submit: %w", err)
		}
		for _, r := range res {
			if !r.Duplicate {
				accepted++
			}
		}
	}
	return accepted, nil
}

func openClaims(ctx context.Context, st store.Store) (int, error) {
	stats, err := st.Stats(ctx)
	if err != nil {
		return 0, fmt.Errorf("queue stats: %w", err)
	}
	n := 0
	for _, s := range stats {
		n += s.Pending + s.Leased
	}
	return n, nil
}

// measure fills res from the store's verdicts, metasim's request log and
// ground truth, and Temporal's histories.
func measure(ctx context.Context, s *system, sc scenario, simStart, start time.Time, wall time.Duration,
	verifiable, truth map[string]bool, res *bench.EngineResult) error {
	decided, err := s.st.Decided(ctx, store.ExportFilter{})
	if err != nil {
		return fmt.Errorf("decided claims: %w", err)
	}
	for key, v := range verifiable {
		if v {
			res.Verifiable++
			if truth[key] {
				res.Genuine++
			}
		}
		if !truth[key] {
			res.Fraudulent++
		}
	}
	var latencies, decidedAfter []time.Duration
	res.ByVerdict, res.Misjudged = map[string]int{}, map[string]int{}
	for _, c := range decided {
		key := c.Tenant + "/" + c.Key
		res.Decided++
		res.ByVerdict[c.Verdict+"/"+c.Method]++
		latencies = append(latencies, time.Duration(float64(c.DecidedAt.Sub(c.SubmittedAt))*sc.speed))
		decidedAfter = append(decidedAfter, c.DecidedAt.Sub(start))
		real := (c.Verdict == store.VerdictVerified || c.Verdict == store.VerdictRejected) &&
			(c.Method == activities.MethodGraph || c.Method == activities.MethodWebhook)
		if real && verifiable[key] {
			res.RealEvidence++
		}
		approved := c.Verdict == store.VerdictVerified || c.Verdict == store.VerdictApprovedBySample || c.Verdict == store.VerdictApprovedOnHonor
		if !truth[key] && approved {
			res.FraudApproved++
			res.Misjudged["fraud approved/"+string(c.Kind)]++
		}
		if truth[key] && verifiable[key] && (c.Verdict == store.VerdictRejected || c.Verdict == store.VerdictRevoked) {
			res.GenuineRejected++
			res.Misjudged["genuine rejected/"+string(c.Kind)]++
		}
	}
	slices.Sort(latencies)
	slices.Sort(decidedAfter)
	if n := len(decidedAfter); n > 0 {
		res.Decided90Seconds = max(decidedAfter[(n*9-1)/10], time.Millisecond).Seconds()
	}
	if n := len(latencies); n > 0 {
		res.LatencyP50 = latencies[n/2]
		res.LatencyP95 = latencies[min(n-1, n*95/100)]
	}
	res.RealEvidenceShare = share(res.RealEvidence, res.Verifiable)
	res.FraudApprovedShare = share(res.FraudApproved, res.Fraudulent)
	res.GenuineRejectedShare = share(res.GenuineRejected, res.Genuine)
	if wall > 0 {
		res.DecidedPerHourWall = float64(res.Decided) / wall.Hours()
	}

	sampleAt := make(map[int]int, len(res.Timeline)) // simulated minute → its sample
	for i, sample := range res.Timeline {
		sampleAt[sample.Minute] = i
	}
	for _, r := range s.sim.Requests() {
		if r.TokenID == "" || r.TokenID == "app" {
			continue
		}
		res.Calls++
		if r.Outcome == metasim.OutcomeThrottled {
			res.Throttles++
		}
		if i, ok := sampleAt[int(r.Time.Sub(simStart)/time.Minute)]; ok {
			res.Timeline[i].Calls++
		}
	}
	// Budget: every token of the world (platform and premium) at the plan's
	// 200 calls an hour, over the run's simulated span.
	allTokens := len(s.tenants.Tokens)
	simHours := wall.Hours() * sc.speed
	if budget := float64(allTokens*planBudget.Calls) * simHours; budget > 0 {
		res.BudgetUtilization = float64(res.Calls) / budget
	}

	if s.temporal != nil {
		events, err := historyEvents(ctx, s)
		if err != nil {
			return err
		}
		res.HistoryEvents = events
		if res.Decided > 0 {
			res.EventsPerDecided = float64(events) / float64(res.Decided)
		}
	}
	return nil
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// historyEvents sums the history length of every workflow run in the
// namespace (visibility carries it, so no history is downloaded).
func historyEvents(ctx context.Context, s *system) (int, error) {
	total := 0
	var token []byte
	for {
		resp, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: "default", PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return total, fmt.Errorf("list workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			total += int(e.GetHistoryLength())
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return total, nil
		}
	}
}
