package workflows_test

import (
	"path/filepath"
	"testing"

	"github.com/socialproof/verifier/internal/engine"
	"go.temporal.io/sdk/worker"
)

// TestReplay replays histories recorded from real runs (see recordHistories
// in pipeline_test.go) against today's workflow code: a change to a
// workflow's commands without workflow.GetVersion fails here.
func TestReplay(t *testing.T) {
	// Histories from before a workflow.GetVersion change replay on its
	// DefaultVersion branch:
	// limiter_continued.json is a limiter run that ended in continue-as-new.
	// dispatcher_before_governor.json predates the Governor ("governor").
	// governor_before_backlog_rule.json predates the backlog rule
	// ("backlog-rule": it replays on the plan's arrival rule).
	// audit_before_permits_in_activity.json and
	// tokenhealth_before_permits_in_activity.json predate their activities
	// reserving their own permits ("permits-in-activity").
	//
	// TenantBatch started afresh when its activities began negotiating their
	// own permits (issue 20): nothing deployed ran the older commands, so
	// its older histories went with the branches that replayed them. From
	// here on, a change to its commands gets a workflow.GetVersion and a
	// history here, like every other workflow's.
	for _, file := range []string{
		"dispatcher.json", "tenantbatch.json", "tenantbatch_sample.json", "tenantbatch_honor.json",
		"limiter.json", "limiter_continued.json", "governor.json", "audit.json", "evidence_purge.json",
		"dispatcher_before_governor.json", "governor_before_backlog_rule.json",
		"audit_before_permits_in_activity.json", "tokenhealth_before_permits_in_activity.json",
		// chaos_<type>.json: per workflow type, the history that saw the most
		// faults in a chaos run (go run ./chaos -scenarios sigkill
		// -claims 3000 -record-histories workflows/testdata).
		"chaos_dispatcher.json", "chaos_tenantbatch.json", "chaos_limiter.json", "chaos_governor.json",
		"chaos_audit.json", "chaos_evidencepurge.json",
		// From TestTenantTokenLifecycle: a token-health run, and a Governor
		// that took token alerts (broken, expiring, revoked, reconnected).
		"tokenhealth.json", "governor_tokens.json",
	} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			engine.RegisterWorkflows(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", file)); err != nil {
				t.Fatalf("replay %s: %v", file, err)
			}
		})
	}
}
