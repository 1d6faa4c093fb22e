// Command chaos runs the chaos suite (`make chaos`): each scenario on a
// fresh Temporal dev server (a process of its own, on a database file),
// task store (PostgreSQL), metasim and worker process, with a workload of
// claims with ground truth, while the worker is SIGKILLed, the dev server
// stopped, the database connections terminated, metasim made to fail, and
// webhooks and claims sent twice. It prints a table per scenario (claims,
// lost, doubled, wrongly rejected, provisional, time to recover after each
// fault), scans every workflow history and log for the run's secrets, and
// writes out/chaos/report.json. It exits 1 when a figure that must be 0 is
// not, or a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/socialproof/verifier/internal/chaos"
)

func main() {
	ok, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "chaos: FAILED: a figure that must be 0 is not (see PROBLEM lines)")
		os.Exit(1)
	}
}

func run() (bool, error) {
	d := chaos.DefaultOptions()
	fs := flag.NewFlagSet("chaos", flag.ExitOnError)
	names := fs.String("scenarios", strings.Join(chaos.Names(), ","), "scenarios to run, in order: "+strings.Join(chaos.Names(), ", ")+", or short (the make test one)")
	claims := fs.Int("claims", 20000, "claims per scenario")
	arrival := fs.Duration("arrival", 3*time.Minute, "wall time over which each scenario's claims arrive")
	db := fs.String("database-url", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL for the task store (a fresh schema per scenario); required by the postgres scenario")
	cli := fs.String("temporal-cli", envOr("TEMPORAL_CLI", "bin/temporal"), "the Temporal CLI (dev server, history export)")
	out := fs.String("out", "out/chaos", "folder for report.json and each scenario's logs (git-ignored)")
	fs.Int64Var(&d.Seed, "seed", d.Seed, "seed of metasim's world, the workload and the fault points")
	fs.Float64Var(&d.Speed, "speed", d.Speed, "simulated seconds per wall second (60: the Schedule fires every second)")
	fs.DurationVar(&d.DrainTimeout, "drain-timeout", d.DrainTimeout, "how long to wait, after the last arrival and fault, for every claim to be decided")
	fs.IntVar(&d.ExportParallel, "export-parallel", d.ExportParallel, "`temporal workflow show` processes at once")
	fs.StringVar(&d.RecordHistories, "record-histories", "", "folder to save, per workflow type, the history that saw the most faults (chaos_<type>.json; workflows/testdata for the replay tests)")
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if d.TemporalCLI, err = filepath.Abs(*cli); err != nil {
		return false, err
	}
	if _, err := os.Stat(d.TemporalCLI); err != nil {
		return false, fmt.Errorf("Temporal CLI %s: %w (make chaos builds it)", d.TemporalCLI, err)
	}
	d.DatabaseURL = *db
	if d.Dir, err = filepath.Abs(*out); err != nil {
		return false, err
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return false, err
	}
	root, err := chaos.RepoRoot()
	if err != nil {
		return false, err
	}
	d.Log("building the worker...")
	if d.WorkerBinary, err = chaos.BuildWorker(ctx, root, d.Dir); err != nil {
		return false, err
	}

	rep := chaos.Report{Started: time.Now().UTC(), Seed: d.Seed, OK: true,
		Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())}
	for _, name := range strings.Split(*names, ",") {
		name = strings.TrimSpace(name)
		var sc chaos.Scenario
		if name == "short" {
			sc = chaos.ShortScenario(*claims, *arrival, d.DatabaseURL != "")
		} else if sc, err = chaos.Named(name, *claims, *arrival); err != nil {
			return false, err
		}
		res, err := chaos.RunScenario(ctx, d, sc)
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		rep.Scenarios = append(rep.Scenarios, res)
		rep.OK = rep.OK && res.OK
		if _, err := chaos.WriteJSON(d.Dir, rep); err != nil { // after each scenario, so a stopped suite leaves what it did
			return false, err
		}
		fmt.Println()
		if err := chaos.PrintTable(os.Stdout, chaos.Report{Scenarios: []chaos.Result{res}}); err != nil {
			return false, err
		}
		fmt.Println()
	}
	fmt.Println("== chaos suite ==")
	if err := chaos.PrintTable(os.Stdout, rep); err != nil {
		return false, err
	}
	path, err := chaos.WriteJSON(d.Dir, rep)
	if err != nil {
		return false, err
	}
	fmt.Printf("\nreport: %s\n", path)
	return rep.OK, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
