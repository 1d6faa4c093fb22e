// Command bench runs the engine and the user's original plan
// (seed-baseline) side by side on the same seeded workload, on the real
// parts (Temporal dev server, task store, metasim over HTTP), and reports
// both: a table on stdout, report.json, report.md and a chart per scenario
// under -out. `make bench` runs it; see the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socialproof/verifier/internal/bench"
	"github.com/socialproof/verifier/internal/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	names := fs.String("scenarios", "steady,viral,drain", "scenarios to run, in order: steady, viral, drain, smoke")
	speed := fs.Float64("speed", 120, "simulated seconds per wall second for steady (drain is never accelerated)")
	viralSpeed := fs.Float64("viral-speed", 60, "simulated seconds per wall second for viral: its spike comes at 100,000 claims an hour, and at 120 the 15 minutes of recovery would be 7.5 wall seconds, a test of this machine rather than of the engine")
	seed := fs.Int64("seed", 7, "seed of metasim's world and of the workload")
	out := fs.String("out", "out/bench", "folder for report.json, report.md and the charts (git-ignored)")
	db := fs.String("database-url", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL for the task store (a fresh schema per run); empty: a SQLite file per run")
	cli := fs.String("temporal-cli", envOr("TEMPORAL_CLI", "bin/temporal"), "the Temporal CLI that runs the dev server")
	drainSize := fs.Int("drain", 200000, "claims pending when drain starts")
	growth := fs.String("growth", "50000,100000", "more drain sizes for the cost-growth series (the -drain size is added)")
	drainCap := fs.Duration("drain-cap", 2*time.Minute, "wall time a drain may take before it is stopped and measured as is")
	growthCap := fs.Duration("growth-cap", time.Minute, "wall time each extra cost-growth drain may take: its rate is measured on the first 90% decided, which takes seconds")
	baselineCap := fs.Duration("baseline-drain-cap", time.Minute, "wall time seed-baseline drains for: its cron decides at most 500 a minute, so its rate shows in a minute")
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := os.Stat(*cli); err != nil {
		return fmt.Errorf("Temporal CLI %s: %w (make bench builds it)", *cli, err)
	}
	o := runOptions{seed: *seed, dir: filepath.Join(*out, "runs"), databaseURL: *db, temporalCLI: *cli,
		log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}
	if err := os.RemoveAll(o.dir); err != nil {
		return err
	}
	report := bench.Report{Started: time.Now().UTC(), Store: "sqlite",
		Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())}
	if *db != "" {
		report.Store = "postgres"
	}

	for _, name := range strings.Split(*names, ",") {
		sc, err := scenarioNamed(strings.TrimSpace(name), *speed, *viralSpeed, *drainSize, *drainCap)
		if err != nil {
			return err
		}
		sr := bench.ScenarioResult{Name: sc.name, About: sc.about, Seed: *seed, Speed: sc.speed}
		for _, e := range []struct {
			name string
			eng  benchEngine
			cap  time.Duration
		}{
			{bench.EngineOurs, &ours{tune: sc.tune}, sc.wallCap},
			{bench.EngineBaseline, &seedBaseline{}, baselineWallCap(sc, *baselineCap)},
		} {
			o.log("%s: %s...", sc.name, e.name)
			run := sc.scenario
			run.wallCap = e.cap
			began := time.Now()
			res, err := runEngine(ctx, run, e.name, e.eng, o)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", sc.name, e.name, err)
			}
			o.log("  %d of %d decided in %v", res.Decided, res.Claims, time.Since(began).Round(time.Second))
			sr.Claims = res.Claims
			sr.Engines = append(sr.Engines, res)
		}
		sr.Targets = targets(sc, sr)
		report.Scenarios = append(report.Scenarios, sr)
		if sc.name == "drain" {
			report.Growth = append(report.Growth, growthPoint(sr.Engines[0]))
			for _, size := range parseSizes(*growth) {
				g := sc
				g.backlog, g.wallCap = size, *growthCap
				g.name = fmt.Sprintf("drain-%d", size)
				o.log("%s: %s...", g.name, bench.EngineOurs)
				res, err := runEngine(ctx, g.scenario, bench.EngineOurs, &ours{tune: sc.tune}, o)
				if err != nil {
					return fmt.Errorf("%s: %w", g.name, err)
				}
				report.Growth = append(report.Growth, growthPoint(res))
			}
		}
	}
	if err := bench.PrintTable(os.Stdout, report); err != nil {
		return err
	}
	if err := bench.WriteAll(*out, report); err != nil {
		return err
	}
	fmt.Printf("\nreport: %s (report.json, report.md, a chart per scenario)\n", *out)
	return nil
}

// namedScenario is a scenario and how our engine is tuned for it.
type namedScenario struct {
	scenario
	tune func(*config.Config)
}

// The viral spike: 100,000 claims an hour from minute viralSpikeStart to
// viralSpikeEnd, after a warm-up at the steady rate; pending is checked 15
// minutes after it ends, and the run goes on to minute viralMinutes.
const (
	viralSpikeStart = 30
	viralSpikeEnd   = 45
	viralMinutes    = 90
)

func scenarioNamed(name string, speed, viralSpeed float64, drainSize int, drainCap time.Duration) (namedScenario, error) {
	steady := func(m int) int { return perMinute(20000, m) }
	switch name {
	case "steady":
		return namedScenario{scenario: scenario{name: name, about: "20,000 claims an hour for 2 simulated hours, mixed kinds, 10% fraudulent",
			speed: speed, minutes: 120, arrivals: steady, tail: 30 * time.Minute}}, nil
	case "viral":
		return namedScenario{scenario: scenario{name: name,
			about: fmt.Sprintf("20,000 claims an hour plus 100,000 an hour from minute %d to %d, for %d simulated minutes", viralSpikeStart, viralSpikeEnd, viralMinutes),
			speed: viralSpeed, minutes: viralMinutes, tail: time.Minute, arrivals: func(m int) int {
				if m >= viralSpikeStart && m < viralSpikeEnd {
					return steady(m) + perMinute(100000, m)
				}
				return steady(m)
			}}}, nil
	case "drain":
		return namedScenario{scenario: scenario{name: name, about: fmt.Sprintf("%d claims pending at the start, wall-clock time (not accelerated)", drainSize),
			speed: 1, backlog: drainSize, arrivals: func(int) int { return 0 }, wallCap: drainCap},
			// A backlog is drained by dispatching every second; the
			// Governor's backlog rule takes the largest batches.
			tune: func(c *config.Config) { c.Interval, c.BacklogBatchSize = time.Second, 10000 }}, nil
	case "smoke":
		return namedScenario{scenario: scenario{name: name, about: "20,000 claims an hour for 3 simulated minutes, until all are decided",
			speed: speed, minutes: 3, arrivals: steady, tail: 90 * time.Minute}}, nil
	}
	return namedScenario{}, fmt.Errorf("unknown scenario %q (steady, viral, drain, smoke)", name)
}

// perMinute spreads an hourly rate over the minutes of an hour exactly.
func perMinute(perHour, m int) int {
	return perHour*(m%60+1)/60 - perHour*(m%60)/60
}

func baselineWallCap(sc namedScenario, baselineCap time.Duration) time.Duration {
	if sc.name == "drain" {
		return baselineCap
	}
	return sc.wallCap
}

func growthPoint(r bench.EngineResult) bench.GrowthPoint {
	g := bench.GrowthPoint{Engine: r.Engine, Claims: r.Claims, PeakWorkerMemMB: r.PeakWorkerMemMB}
	if r.WallSeconds > 0 {
		g.ClaimsPerSecond = float64(r.Decided) / r.WallSeconds
		if r.Decided90Seconds > 0 {
			g.ClaimsPerSecond = 0.9 * float64(r.Decided) / r.Decided90Seconds
		}
	}
	return g
}

func parseSizes(list string) []int {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			sizes = append(sizes, n)
		}
	}
	return sizes
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// targets checks the targets for our engine in a scenario.
func targets(sc namedScenario, sr bench.ScenarioResult) []bench.Target {
	ours := sr.Engines[0]
	pct := func(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }
	switch sc.name {
	case "steady", "smoke":
		return []bench.Target{
			{What: "≥ 95% of verifiable claims with real evidence", Measured: pct(ours.RealEvidenceShare), Met: ours.RealEvidenceShare >= 0.95},
			{What: "< 1% of fraudulent claims approved (after audit)", Measured: pct(ours.FraudApprovedShare), Met: ours.FraudApprovedShare < 0.01},
			{What: "< 0.1% of genuine claims rejected", Measured: pct(ours.GenuineRejectedShare), Met: ours.GenuineRejectedShare < 0.001},
			{What: "zero throttle errors", Measured: strconv.Itoa(ours.Throttles), Met: ours.Throttles == 0},
			{What: "≤ 0.05 history events per decided claim", Measured: fmt.Sprintf("%.3f", ours.EventsPerDecided), Met: ours.EventsPerDecided <= 0.05},
		}
	case "viral":
		// Pending 15 simulated minutes after the spike ends.
		at, p := viralSpikeEnd+15, -1
		for _, s := range ours.Timeline {
			if s.Minute >= at {
				p = s.Pending
				break
			}
		}
		return []bench.Target{{What: "pending < 5,000 within 15 simulated minutes after the spike", Measured: fmt.Sprintf("%d pending at minute %d", p, at), Met: p >= 0 && p < 5000}}
	case "drain":
		return []bench.Target{{What: "≥ 1,000,000 claims decided per hour (wall clock)", Measured: fmt.Sprintf("%.0f", ours.DecidedPerHourWall), Met: ours.DecidedPerHourWall >= 1e6}}
	}
	return nil
}
