package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/socialproof/verifier/internal/bench"
	"github.com/socialproof/verifier/internal/testenv"
)

// The bench's smoke scenario, as `make test` runs it: both engines on the
// same five simulated minutes of claims, on the real parts. The engine
// decides every claim without approving a false one; the user's plan
// approves false claims by sample. The report is written.
func TestBenchSmoke(t *testing.T) {
	sc, err := scenarioNamed("smoke", 120, 60, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	o := runOptions{seed: 7, dir: t.TempDir(), databaseURL: os.Getenv("TEST_DATABASE_URL"), temporalCLI: testenv.TemporalCLI(t), log: t.Logf}
	ctx := context.Background()
	sr := bench.ScenarioResult{Name: sc.name, About: sc.about, Seed: o.seed, Speed: sc.speed}
	for _, e := range []struct {
		name string
		eng  benchEngine
	}{{bench.EngineOurs, &ours{}}, {bench.EngineBaseline, &seedBaseline{}}} {
		res, err := runEngine(ctx, sc.scenario, e.name, e.eng, o)
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		t.Logf("FIGURES bench smoke %s: %d/%d decided, real evidence %.1f%%, fraud approved %d/%d, genuine rejected %d/%d, %d calls, %d throttles, %.2f events per decided claim",
			e.name, res.Decided, res.Claims, 100*res.RealEvidenceShare, res.FraudApproved, res.Fraudulent, res.GenuineRejected, res.Genuine, res.Calls, res.Throttles, res.EventsPerDecided)
		sr.Engines = append(sr.Engines, res)
	}
	ours, plan := sr.Engines[0], sr.Engines[1]
	if ours.Claims == 0 || ours.Claims != plan.Claims {
		t.Fatalf("claims: engine %d, seed-baseline %d; want the same workload", ours.Claims, plan.Claims)
	}
	if ours.Decided != ours.Claims {
		t.Errorf("engine decided %d of %d claims", ours.Decided, ours.Claims)
	}
	if ours.GenuineRejected != 0 || ours.FraudApproved != 0 || ours.Throttles != 0 {
		t.Errorf("engine: genuine rejected %d, fraud approved %d, throttles %d; want none", ours.GenuineRejected, ours.FraudApproved, ours.Throttles)
	}
	if plan.FraudApproved <= ours.FraudApproved {
		t.Errorf("seed-baseline approved %d false claims, engine %d: the plan's sampling should approve some", plan.FraudApproved, ours.FraudApproved)
	}
	if ours.HistoryEvents == 0 || len(ours.Timeline) == 0 {
		t.Errorf("engine: %d history events, %d timeline samples; want both measured", ours.HistoryEvents, len(ours.Timeline))
	}
	sr.Targets = targets(sc, sr)
	dir := filepath.Join(t.TempDir(), "report")
	if err := bench.WriteAll(dir, bench.Report{Store: "sqlite", Scenarios: []bench.ScenarioResult{sr}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "report.md", "smoke.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}
