package workflows_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/limiter"
	"github.com/socialproof/verifier/workflows"
)

// TestPipeline runs the whole spine on real parts: the Temporal dev server,
// metasim over HTTP through huandu/facebook, and the task store. 2,000 claims
// over 3 tenants, 10% fraudulent, plus malformed lines: every valid claim gets
// exactly one verdict that agrees with metasim's ground truth, malformed lines
// are refused with reasons, and nothing is left pending or leased.
func TestPipeline(t *testing.T) {
	for _, backend := range testenv.Backends {
		t.Run(backend, func(t *testing.T) { runPipeline(t, backend) })
	}
}

const (
	pipelineClaims    = 2000
	pipelineMalformed = 25
	pipelineSpeed     = 60 // an hour a minute: schedule every second, re-check after 2s
)

func runPipeline(t *testing.T, backend string) {
	ctx := context.Background()
	const appSecret = "pipeline-test-app-secret"
	sim := metasim.New(metasim.Config{
		Seed: 42, Brands: 3, Premium: 1, Speed: pipelineSpeed, AppSecret: appSecret,
		// No limiter yet (next issue): budgets large enough that this test is
		// about verdicts, not throttling.
		PlatformBudget: metasim.Budget{Calls: 1_000_000, Window: time.Hour},
		TenantBudget:   metasim.Budget{Calls: 1_000_000, Window: time.Hour},
	})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)

	st, _ := testenv.OpenStore(t, backend)
	tenants, _ := testenv.SeedWorld(t, sim, st)

	// Claims as JSON Lines, malformed lines mixed in at known places.
	generated := sim.GenerateClaims(pipelineClaims, metasim.ClaimOptions{FraudRate: 0.1})
	malformed := sim.MalformedLines(pipelineMalformed)
	var input bytes.Buffer
	malformedAt := map[int]bool{}
	line := 0
	for i, g := range generated {
		if i%80 == 0 && len(malformedAt) < len(malformed) {
			line++
			malformedAt[line] = true
			input.WriteString(malformed[len(malformedAt)-1] + "\n")
		}
		line++
		input.Write(append(g.Line, '\n'))
	}
	lines, refused, err := claim.ReadLines(&input)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != len(malformed) {
		t.Fatalf("refused %d lines, want the %d malformed ones: %+v", len(refused), len(malformed), refused)
	}
	for _, r := range refused {
		if !malformedAt[r.Line] || r.Reason == "" {
			t.Errorf("refused line %d (%q) is not a malformed line", r.Line, r.Reason)
		}
	}
	valid := make([]claim.Claim, len(lines))
	for i, l := range lines {
		valid[i] = l.Claim
	}
	submitted := systemtest.SubmitAll(t, st, valid)
	if dup := systemtest.SubmitAll(t, st, valid[:100]); dup.Accepted != 0 || dup.Duplicates != 100 {
		t.Fatalf("resubmitting 100 claims: %+v, want 100 duplicates", dup)
	}

	c := testenv.DevServer(t)
	systemtest.StartWorker(t, c, engine.Deps{
		Store:           st,
		Graph:           graph.New(graph.Config{BaseURL: srv.URL + "/", Version: "v21.0", AppID: sim.World().AppID, AppSecret: secret.New(appSecret)}),
		PlatformTokenID: tenants.PlatformToken,
		Speed:           pipelineSpeed,
	})
	cfg := config.Default()
	cfg.Mode = workflows.ModeVerify // every verdict checked against the ground truth
	cfg.Speed = pipelineSpeed
	cfg.BatchSize = 500
	created, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg))
	if err != nil || !created {
		t.Fatalf("EnsureSchedule: created=%v err=%v", created, err)
	}
	if created, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil || created {
		t.Fatalf("EnsureSchedule again must update, not create: created=%v err=%v", created, err)
	}

	start := time.Now()
	testenv.Eventually(t, 5*time.Minute, time.Second, "every claim decided", func() (bool, string) {
		stats, err := st.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		pending, leased, decided := 0, 0, 0
		for _, s := range stats {
			pending += s.Pending
			leased += s.Leased
			for _, n := range s.Decided {
				decided += n
			}
		}
		return pending == 0 && leased == 0 && decided == submitted.Accepted,
			fmt.Sprintf("pending=%d leased=%d decided=%d/%d", pending, leased, decided, submitted.Accepted)
	})
	t.Logf("%d claims decided in %v", submitted.Accepted, time.Since(start).Round(time.Second))

	systemtest.CheckVerdictsAgainstTruth(t, st, sim.Truth(), submitted.Accepted)
	checkBatchesVisible(t, c, tenants.Tenants)
	checkEvidencePurge(t, c, st, cfg)

	h := c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID)
	if err := h.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("RECORD_HISTORIES"); dir != "" && backend == testenv.SQLite {
		recordHistories(t, c, dir)
	}
}

// checkBatchesVisible finds each tenant's TenantBatch runs through the
// TenantID search attribute, as an operator would in the Web UI.
func checkBatchesVisible(t *testing.T, c client.Client, tenants []store.Tenant) {
	t.Helper()
	ctx := context.Background()
	for _, tn := range tenants {
		query := fmt.Sprintf("WorkflowType = '%s' AND TenantID = '%s'", workflows.TenantBatchWorkflow, tn.ID)
		testenv.Eventually(t, 30*time.Second, time.Second, "batches of "+tn.ID+" in visibility", func() (bool, string) {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
			if err != nil {
				return false, err.Error()
			}
			for _, e := range resp.Executions {
				if !strings.HasPrefix(e.Execution.WorkflowId, "batch/"+tn.ID+"/") {
					return false, "unexpected id " + e.Execution.WorkflowId
				}
				if e.Status == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED && e.Memo.GetFields()["progress"] == nil {
					return false, "completed batch without progress memo"
				}
			}
			return len(resp.Executions) > 0, fmt.Sprintf("%d executions", len(resp.Executions))
		})
	}
}

// checkEvidencePurge sets up the purge Schedule as `starter setup` does,
// then runs a purge with a retention of a nanosecond: every action the
// pipeline's reads stored is deleted.
func checkEvidencePurge(t *testing.T, c client.Client, st store.Store, cfg config.Config) {
	t.Helper()
	ctx := context.Background()
	if created, err := workflows.EnsurePurgeSchedule(ctx, c, cfg); err != nil || !created {
		t.Fatalf("EnsurePurgeSchedule: created=%v err=%v", created, err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.EvidencePurgeScheduleID).Delete(ctx) })
	decided, err := st.Decided(ctx, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, cl := range decided {
		targets = append(targets, cl.Target)
	}
	stored, _, err := st.Evidence(ctx, targets)
	if err != nil || len(stored) == 0 {
		t.Fatalf("no evidence stored by the pipeline's reads (%v)", err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "evidence-purge-test", TaskQueue: workflows.TaskQueue},
		workflows.EvidencePurgeWorkflow, activities.PurgeInput{Retention: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var purged int
	if err := run.Get(ctx, &purged); err != nil {
		t.Fatal(err)
	}
	left, _, err := st.Evidence(ctx, targets)
	if err != nil || len(left) != 0 || purged != len(stored) {
		t.Fatalf("purge deleted %d of %d actions; %d left (%v)", purged, len(stored), len(left), err)
	}
}

// recordHistories writes a history of each workflow type for the replay
// tests (RECORD_HISTORIES=$PWD/workflows/testdata go test -run TestPipeline/sqlite ./workflows).
func recordHistories(t *testing.T, c client.Client, dir string) {
	for _, r := range []struct{ workflowType, status, file string }{
		{workflows.DispatcherWorkflow, "Completed", "dispatcher.json"},
		{workflows.TenantBatchWorkflow, "Completed", "tenantbatch.json"},
		{limiter.WorkflowType, "Running", "limiter.json"},
		{workflows.EvidencePurgeWorkflow, "Completed", "evidence_purge.json"},
	} {
		systemtest.RecordHistory(t, c, fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = '%s'", r.workflowType, r.status), filepath.Join(dir, r.file))
	}
}
