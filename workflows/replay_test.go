package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/workflows"
)

// TestReplay replays histories recorded from real runs (see recordHistories
// in pipeline_test.go) against today's workflow code: a change to a
// workflow's commands without workflow.GetVersion fails here.
func TestReplay(t *testing.T) {
	// tenantbatch_unpaced.json predates the limiter (workflow.GetVersion
	// "limiter-permits" keeps it replaying).
	// limiter_continued.json is a limiter run that ended in continue-as-new.
	// *_before_governor.json predate the Governor (workflow.GetVersion
	// "governor" and "hybrid-modes").
	// tenantbatch_before_lease_while_queued.json predates lease extensions
	// while a batch waits for a busy limiter ("lease-while-queued") and the
	// re-check's stored-evidence passes ("recheck-stored").
	// tenantbatch_before_one_reader.json predates re-checks waiting for
	// another batch's read of the same target ("one-reader-per-target").
	// governor_before_backlog_rule.json predates the backlog rule
	// ("backlog-rule": it replays on the plan's arrival rule).
	// tenantbatch_honor_before_stored_first.json predates honor batches
	// deciding from stored evidence first ("honor-stored-first").
	for _, file := range []string{
		"dispatcher.json", "tenantbatch.json", "tenantbatch_sample.json", "tenantbatch_honor.json",
		"limiter.json", "limiter_continued.json", "governor.json", "audit.json", "evidence_purge.json",
		"dispatcher_before_governor.json", "tenantbatch_before_governor.json", "tenantbatch_unpaced.json",
		"tenantbatch_before_lease_while_queued.json", "tenantbatch_before_one_reader.json",
		"governor_before_backlog_rule.json", "tenantbatch_honor_before_stored_first.json",
		// chaos_<type>.json: per workflow type, the history that saw the most
		// faults in a chaos run (go run ./cmd/chaos -scenarios sigkill
		// -claims 3000 -record-histories workflows/testdata).
		"chaos_dispatcher.json", "chaos_tenantbatch.json", "chaos_limiter.json", "chaos_governor.json",
		"chaos_audit.json", "chaos_evidencepurge.json",
		// From TestTenantTokenLifecycle: a token-health run, and a Governor
		// that took token alerts (broken, expiring, revoked, reconnected).
		"tokenhealth.json", "governor_tokens.json",
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Dispatcher, workflow.RegisterOptions{Name: workflows.DispatcherWorkflow})
			r.RegisterWorkflowWithOptions(workflows.TenantBatch, workflow.RegisterOptions{Name: workflows.TenantBatchWorkflow})
			r.RegisterWorkflowWithOptions(workflows.Limiter, workflow.RegisterOptions{Name: workflows.LimiterWorkflow})
			r.RegisterWorkflowWithOptions(workflows.Governor, workflow.RegisterOptions{Name: workflows.GovernorWorkflow})
			r.RegisterWorkflowWithOptions(workflows.Audit, workflow.RegisterOptions{Name: workflows.AuditWorkflow})
			r.RegisterWorkflowWithOptions(workflows.EvidencePurge, workflow.RegisterOptions{Name: workflows.EvidencePurgeWorkflow})
			r.RegisterWorkflowWithOptions(workflows.TokenHealth, workflow.RegisterOptions{Name: workflows.TokenHealthWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", file)); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
