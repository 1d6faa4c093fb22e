// Package chaos is the chaos harness: it runs the engine on the real
// parts (the Temporal dev server as a process of its own, the task store on
// PostgreSQL or SQLite, metasim over HTTP, the worker binary as a process),
// feeds it a workload with ground truth while it breaks things (SIGKILLs the
// worker, stops the dev server, terminates the worker's database
// connections, makes metasim fail, slow, throttle and refuse a token, sends
// every webhook and claim twice), and then checks that every claim was
// decided exactly once, that every verdict agrees with the ground truth or
// is a labelled provisional approval, that no genuine claim was rejected,
// that nothing is left leased, and that no secret reached a workflow
// history or a log. chaos (`make chaos`) runs the full suite; the test
// of this package runs a short scenario in `make test`.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
)

// Options are what every scenario of a suite shares.
type Options struct {
	TemporalCLI  string // the Temporal CLI: runs the dev server, exports histories
	WorkerBinary string // the worker, built by BuildWorker
	DatabaseURL  string // PostgreSQL (a fresh schema per scenario); empty: an SQLite file
	Dir          string // scenario folders go under it (logs, the dev server's database)
	Seed         int64  // metasim's world, the workload and the fault points
	Speed        float64
	Brands       int // tenants in metasim's world
	Premium      int // of which premium, with tokens of their own
	Budget       int // calls an hour per token, in metasim and the limiters
	// DrainTimeout bounds the wait, after the last arrival and fault, for
	// every claim to be decided; what is open then is counted lost.
	DrainTimeout time.Duration
	// ExportParallel is how many `temporal workflow show` run at once.
	ExportParallel int
	// RecordHistories, when set, is a folder where the secrets scan saves,
	// per workflow type, the exported history that saw the most faults
	// (chaos_<type>.json), for the replay tests.
	RecordHistories string
	Log             func(format string, args ...any)
}

// DefaultOptions are the suite's settings on this repository's 2-core
// machine: speed 60 (the Schedule fires every wall second), six tenants,
// two of them premium, budgets far above the load.
func DefaultOptions() Options {
	return Options{Seed: 7, Speed: 60, Brands: 6, Premium: 2, Budget: 200_000, DrainTimeout: 10 * time.Minute, ExportParallel: 3,
		Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
}

// Scenario is a workload and the faults injected while it runs.
type Scenario struct {
	Name, About string
	Claims      int           // claims in the workload (each submitted once, or twice)
	Arrival     time.Duration // wall time over which they are submitted, evenly
	FraudRate   float64       // share of false claims (metasim's default 0.1 when 0)
	// WebhookDuplicates is the share of metasim's webhook POSTs sent twice.
	WebhookDuplicates float64
	// DuplicateSubmissions submits every claim a second time through the
	// platform API (POST /v1/claims), a few seconds later or at the same
	// moment; every second submission must be answered "duplicate".
	DuplicateSubmissions bool
	NeedsPostgres        bool
	// Script injects the faults while the claims arrive (it may outlast
	// them); each fault is recorded with Run.Fault.
	Script func(ctx context.Context, r *Run) error
}

// Run is a scenario in progress, as its script sees it.
type Run struct {
	sys   *system
	o     Options
	sc    Scenario
	start time.Time
	rng   *rand.Rand
	log   func(string, ...any)

	mu      sync.Mutex
	faults  []FaultResult
	samples []sample
}

// FaultResult is one injected fault and how long the engine took to recover
// from it.
type FaultResult struct {
	Name       string  `json:"name"`
	Detail     string  `json:"detail,omitempty"`
	StartS     float64 `json:"start_s"` // seconds since the run began
	EndS       float64 `json:"end_s"`   // when the fault was lifted (= start for a one-off)
	OpenBefore int     `json:"open_before"`
	PeakOpen   int     `json:"peak_open"` // most open claims from the fault's start until its backlog was cleared
	// ResumeS is the wall time from the fault's end to the first decision
	// after it; -1 when none came, or none was needed (OpenAtEnd 0).
	ResumeS float64 `json:"resume_s"`
	// RecoveryS, the time to recover, is the wall time from the fault's end
	// until every claim the fault could have touched (submitted before its
	// end and not yet decided at its start) was decided, 0 when they all
	// were by its end; -1 when some never were.
	RecoveryS float64 `json:"recovery_s"`
	Affected  int     `json:"affected"`    // those claims
	OpenAtEnd int     `json:"open_at_end"` // of those, the ones still open when the fault was lifted
}

type sample struct {
	at      time.Duration
	open    int
	leased  int
	decided int
}

// Since is the wall time since the run began.
func (r *Run) Since() time.Duration { return time.Since(r.start) }

// Sleep waits d or until ctx ends.
func (r *Run) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// SleepUntil waits until the run is at offset, or until ctx ends.
func (r *Run) SleepUntil(ctx context.Context, offset time.Duration) error {
	return r.Sleep(ctx, offset-r.Since())
}

// Fault injects a fault, keeps it for hold (the lift func may also wait
// on its own, e.g. for a process to serve again), lifts it and records its
// window. A nil lift makes a one-off fault.
func (r *Run) Fault(ctx context.Context, name, detail string, inject func() error, hold time.Duration, lift func() error) error {
	f := FaultResult{Name: name, Detail: detail, StartS: r.Since().Seconds(), OpenBefore: r.lastOpen(), RecoveryS: -1}
	r.log("  %6.1fs fault: %s %s", f.StartS, name, detail)
	if err := inject(); err != nil {
		return fmt.Errorf("inject %s: %w", name, err)
	}
	if err := r.Sleep(ctx, hold); err != nil {
		return err
	}
	if lift != nil {
		if err := lift(); err != nil {
			return fmt.Errorf("lift %s: %w", name, err)
		}
	}
	f.EndS = r.Since().Seconds()
	if f.EndS > f.StartS {
		r.log("  %6.1fs lifted: %s", f.EndS, name)
	}
	r.mu.Lock()
	r.faults = append(r.faults, f)
	r.mu.Unlock()
	return nil
}

// Rand is the run's seeded random source (fault points, downtimes).
func (r *Run) Rand() *rand.Rand { return r.rng }

func (r *Run) lastOpen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return 0
	}
	return r.samples[len(r.samples)-1].open
}

// KillWorker SIGKILLs the worker process.
func (r *Run) KillWorker() error { return r.sys.worker.kill() }

// StartWorker starts the worker again and waits until it serves.
func (r *Run) StartWorker(ctx context.Context) error { return r.sys.startWorker(ctx) }

// StopDevServer stops the Temporal dev server: SIGTERM (graceful), or
// SIGKILL when hard.
func (r *Run) StopDevServer(hard bool) error {
	if hard {
		return r.sys.dev.kill()
	}
	return r.sys.dev.stop(30 * time.Second)
}

// StartDevServer starts the dev server again on the same database file and
// port, and waits until it answers.
func (r *Run) StartDevServer(ctx context.Context) error { return r.sys.startDevServer(ctx) }

// TerminateWorkerConnections ends the worker's PostgreSQL backends.
func (r *Run) TerminateWorkerConnections(ctx context.Context) (int, error) {
	return r.sys.terminateWorkerConnections(ctx)
}

// Sim is metasim, for faults.
func (r *Run) Sim() *metasim.Sim { return r.sys.sim }

// PremiumTokens are the premium tenants' own token ids.
func (r *Run) PremiumTokens() []string {
	var ids []string
	for _, t := range r.sys.tenants.Tenants {
		if t.Tier == store.TierPremium && t.TokenID != "" {
			ids = append(ids, t.TokenID)
		}
	}
	return ids
}

// PlatformToken is the platform token's id.
func (r *Run) PlatformToken() string { return r.sys.tenants.PlatformToken }

// Arrival is the scenario's arrival window.
func (r *Run) Arrival() time.Duration { return r.sc.Arrival }

// RunScenario runs one scenario on a fresh system and checks it.
func RunScenario(ctx context.Context, o Options, sc Scenario) (Result, error) {
	res := Result{Scenario: sc.Name, About: sc.About, Speed: o.Speed}
	if sc.NeedsPostgres && o.DatabaseURL == "" {
		return res, fmt.Errorf("%s needs PostgreSQL: set -database-url or TEST_DATABASE_URL", sc.Name)
	}
	log := o.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	dir := filepath.Join(o.Dir, sc.Name)
	if err := os.RemoveAll(dir); err != nil {
		return res, err
	}
	began := time.Now()
	log("%s: starting the dev server, store, metasim and worker...", sc.Name)
	sys, err := startSystem(ctx, o, sc, dir, log)
	if err != nil {
		return res, err
	}
	defer func() {
		sys.close()
		// The token files, and the databases (hundreds of MB); the logs stay.
		_ = os.RemoveAll(sys.secretsDir)
		for _, pattern := range []string{"temporal.db*", "verifier.db*"} {
			files, _ := filepath.Glob(filepath.Join(dir, pattern))
			for _, f := range files {
				_ = os.Remove(f)
			}
		}
	}()
	res.Store = sys.backend
	log("%s: up in %v (dev server %s, worker pid %d); %d claims over %v", sc.Name, time.Since(began).Round(100*time.Millisecond),
		sys.devHostPort, sys.worker.pid(), sc.Claims, sc.Arrival)

	r := &Run{sys: sys, o: o, sc: sc, start: time.Now(), log: log,
		rng: rand.New(rand.NewPCG(uint64(o.Seed), uint64(len(sc.Name))*0x9e3779b97f4a7c15))}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Sample the queue every 250 ms until the end.
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		r.monitor(runCtx)
	}()
	defer func() { cancel(); <-monitorDone }()

	wl := newWorkload(sys, sc, o, log)
	arrivalsDone := make(chan error, 1)
	go func() { arrivalsDone <- wl.arrive(runCtx, r.start) }()
	scriptErr := make(chan error, 1)
	go func() {
		if sc.Script == nil {
			scriptErr <- nil
			return
		}
		scriptErr <- sc.Script(runCtx, r)
	}()
	var runErr error
	for range 2 {
		select {
		case err := <-arrivalsDone:
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("arrivals: %w", err))
				cancel()
			}
		case err := <-scriptErr:
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("script: %w", err))
				cancel()
			}
		}
	}
	if err := wl.waitDuplicates(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("duplicate submissions: %w", err))
	}
	if runErr != nil {
		return res, runErr
	}
	arrived := r.Since()
	log("%s: %d claims submitted by %.1fs; draining...", sc.Name, wl.unique(), arrived.Seconds())

	// Drain: wait until nothing is open.
	drainStart := time.Now()
	drained := false
	for time.Since(drainStart) < o.DrainTimeout {
		if s, ok := r.last(); ok && s.open == 0 && s.at > arrived {
			drained = true
			break
		}
		if gone, how := sys.worker.exited(); gone {
			return res, fmt.Errorf("the worker exited by itself (%s); see %s", how, sys.worker.logs[len(sys.worker.logs)-1])
		}
		if err := r.Sleep(ctx, 500*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.DrainS = time.Since(drainStart).Seconds()
	res.WallS = r.Since().Seconds()
	if !drained {
		log("%s: not drained after %v", sc.Name, o.DrainTimeout)
	}
	cancel()
	<-monitorDone

	// Checks on the store, against ground truth.
	decided, err := check(ctx, sys, wl, &res)
	if err != nil {
		return res, err
	}
	res.Faults = r.recoveries(decided, res.Lost)
	for _, f := range res.Faults {
		if f.RecoveryS > res.MaxRecoveryS {
			res.MaxRecoveryS = f.RecoveryS
		}
		if f.RecoveryS < 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("no recovery after %s", f.Name))
		}
	}
	res.Webhooks = sys.sim.WebhookStats()
	res.GraphCalls, res.GraphByOutcome, res.RefusedCalls = graphCalls(sys.sim)

	// Stop the worker (its last log lines are flushed), then export every
	// history and scan it and every log for the run's secrets.
	if err := sys.worker.stop(30 * time.Second); err != nil {
		return res, err
	}
	log("%s: decided %d of %d (lost %d, doubled %d, wrongly rejected %d, mismatched %d); scanning histories and logs for secrets...",
		sc.Name, res.Decided, res.Claims, res.Lost, res.Doubled, res.WronglyRejected, res.Mismatched)
	scanBegan := time.Now()
	if err := scanSecrets(ctx, sys, o, &res); err != nil {
		return res, err
	}
	res.ScanS = time.Since(scanBegan).Seconds()
	res.finish()
	return res, nil
}

// monitor samples the queue until ctx ends.
func (r *Run) monitor(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		stats, err := r.sys.st.Stats(ctx)
		if err == nil {
			s := sample{at: r.Since()}
			for _, st := range stats {
				s.open += st.Pending + st.Leased
				s.leased += st.Leased
				for _, n := range st.Decided {
					s.decided += n
				}
			}
			r.mu.Lock()
			r.samples = append(r.samples, s)
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Run) last() (sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return sample{}, false
	}
	return r.samples[len(r.samples)-1], true
}

// recoveries computes each fault's times from the decided claims'
// submission and decision times (both wall clocks of this machine) and its
// peak of open claims from the samples.
func (r *Run) recoveries(decided []store.Claim, lost int) []FaultResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]FaultResult(nil), r.faults...)
	for i := range out {
		f := &out[i]
		start := r.start.Add(time.Duration(f.StartS * float64(time.Second)))
		end := r.start.Add(time.Duration(f.EndS * float64(time.Second)))
		f.ResumeS, f.RecoveryS = -1, 0
		var cleared time.Time
		for _, c := range decided {
			if c.DecidedAt.After(end) && (f.ResumeS < 0 || c.DecidedAt.Sub(end).Seconds() < f.ResumeS) {
				f.ResumeS = c.DecidedAt.Sub(end).Seconds()
			}
			if c.SubmittedAt.Before(end) && !c.DecidedAt.Before(start) {
				f.Affected++
				if c.DecidedAt.After(end) {
					f.OpenAtEnd++
				}
				if c.DecidedAt.After(cleared) {
					cleared = c.DecidedAt
				}
			}
		}
		if cleared.After(end) {
			f.RecoveryS = cleared.Sub(end).Seconds()
		}
		if lost > 0 {
			f.RecoveryS = -1
		}
		until := time.Duration(math.Max(f.EndS+f.RecoveryS, f.EndS) * float64(time.Second))
		for _, s := range r.samples {
			if s.at >= time.Duration(f.StartS*float64(time.Second)) && s.at <= until {
				f.PeakOpen = max(f.PeakOpen, s.open)
			}
		}
	}
	return out
}

// graphCalls counts metasim's Graph calls by outcome, and describes each
// token's refused calls (throttled, or 190): how many, over what span of
// wall time. The first refusal of a block cannot be avoided (nothing warned
// of it); the engine should make few after it.
func graphCalls(sim *metasim.Sim) (int, map[string]int, []string) {
	by := map[string]int{}
	type span struct {
		n           int
		first, last time.Time
	}
	refused := map[string]*span{}
	n := 0
	for _, r := range sim.Requests() {
		n++
		by[r.Outcome]++
		if r.Outcome == metasim.OutcomeThrottled || r.Outcome == metasim.OutcomeTokenInvalid {
			k := r.Outcome + " " + r.TokenID
			sp := refused[k]
			if sp == nil {
				sp = &span{first: r.Time}
				refused[k] = sp
			}
			sp.n++
			sp.last = r.Time
		}
	}
	var notes []string
	speed := sim.Config().Speed
	for k, sp := range refused {
		notes = append(notes, fmt.Sprintf("%s: %d calls over %.1fs", k, sp.n, sp.last.Sub(sp.first).Seconds()/speed))
	}
	sort.Strings(notes)
	return n, by, notes
}

// workload generates the claims with metasim (the genuine ones act in its
// world as they arrive) and submits them like the platform would.
type workload struct {
	sys *system
	sc  Scenario
	o   Options
	log func(string, ...any)
	rng *rand.Rand

	mu        sync.Mutex
	truth     map[string]bool // tenant/key → genuine
	kinds     map[string]claim.Kind
	ids       map[string]int64 // tenant/key → the id the first answer named
	accepted  map[string]int   // tenant/key → submissions answered accepted (new)
	submitted int              // submissions made, duplicates included
	apiDups   int              // submissions through the API answered duplicate
	dupBad    []string         // answers naming another id than the first
	dups      sync.WaitGroup
	dupErr    error
}

func newWorkload(sys *system, sc Scenario, o Options, log func(string, ...any)) *workload {
	return &workload{sys: sys, sc: sc, o: o, log: log, truth: map[string]bool{}, kinds: map[string]claim.Kind{}, ids: map[string]int64{}, accepted: map[string]int{},
		rng: rand.New(rand.NewPCG(uint64(o.Seed), 0x6475706c))}
}

func (w *workload) unique() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.truth)
}

// arrive submits the scenario's claims evenly over its arrival window, in
// ticks of 250 ms.
func (w *workload) arrive(ctx context.Context, start time.Time) error {
	const tick = 250 * time.Millisecond
	ticks := max(1, int(w.sc.Arrival/tick))
	for i := range ticks {
		n := w.sc.Claims*(i+1)/ticks - w.sc.Claims*i/ticks
		if wait := time.Until(start.Add(time.Duration(i) * tick)); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		if n == 0 {
			continue
		}
		if err := w.submitBatch(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (w *workload) submitBatch(ctx context.Context, n int) error {
	gen := w.sys.sim.GenerateClaims(n, metasim.ClaimOptions{FraudRate: w.sc.FraudRate})
	claims := make([]claim.Claim, 0, len(gen))
	for _, g := range gen {
		c, err := claim.Parse(g.Line)
		if err != nil {
			return fmt.Errorf("metasim generated a claim the parser refuses: %w", err)
		}
		claims = append(claims, c)
	}
	w.mu.Lock()
	for i, g := range gen {
		key := g.Tenant + "/" + g.Key
		w.truth[key] = g.Genuine
		w.kinds[key] = claims[i].Kind
	}
	var delay time.Duration
	race := false
	if w.sc.DuplicateSubmissions {
		// One batch in ten goes through the API at the same moment as the
		// first submission (racing it), the others up to 20 s later (some
		// after their verdicts).
		if race = w.rng.IntN(10) == 0; !race {
			delay = time.Duration(w.rng.Int64N(int64(20 * time.Second)))
		}
	}
	w.mu.Unlock()
	if w.sc.DuplicateSubmissions {
		w.dups.Add(1)
		go func() {
			defer w.dups.Done()
			if delay > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
			}
			if err := w.submitThroughAPI(ctx, gen); err != nil {
				w.mu.Lock()
				w.dupErr = errors.Join(w.dupErr, err)
				w.mu.Unlock()
			}
		}()
		if race {
			runtime.Gosched()
		}
	}
	// A platform retries a submission that failed: Submit is idempotent by
	// tenant and key.
	var res []store.SubmitResult
	var err error
	for attempt := 0; ; attempt++ {
		if res, err = w.sys.st.Submit(ctx, claims, time.Now()); err == nil {
			break
		}
		if attempt >= 20 || ctx.Err() != nil {
			return fmt.Errorf("submit: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.submitted += len(claims)
	for i, g := range gen {
		w.record(g.Tenant+"/"+g.Key, res[i].ID, !res[i].Duplicate)
	}
	return nil
}

// record notes one submission's answer: the claim's id, and whether it
// was accepted as new (a claim must be accepted once, whatever the number
// of submissions, and every answer must name the same id). Called with
// w.mu held.
func (w *workload) record(key string, id int64, accepted bool) {
	if prev, ok := w.ids[key]; ok && prev != id {
		w.dupBad = append(w.dupBad, fmt.Sprintf("%s: ids %d and %d", key, prev, id))
	} else if !ok {
		w.ids[key] = id
	}
	if accepted {
		w.accepted[key]++
	}
}

func (w *workload) waitDuplicates() error {
	w.dups.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dupErr
}
