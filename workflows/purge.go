package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
)

// Evidence purge: a Schedule runs it every hour.
const (
	EvidencePurgeWorkflow   = "EvidencePurge"
	EvidencePurgeScheduleID = "evidence-purge"
)

// EvidencePurge deletes stored evidence older than the retention: webhook
// and Graph actions hold comment texts and usernames, personal data kept no
// longer than claims need it. It returns how many actions it deleted.
func EvidencePurge(ctx workflow.Context, in activities.PurgeInput) (int, error) {
	var a *activities.Activities
	var n int
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, storeActivityOptions), a.PurgeEvidence, in).Get(ctx, &n)
	return n, err
}
