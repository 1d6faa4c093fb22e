// Package activities holds the claim pipeline's Temporal activities: each
// does one kind of I/O for the Dispatcher, TenantBatch, the audit or the
// evidence purge (the task store, the Graph API) and is safe to retry.
//
//   - dispatch.go: claiming a batch within the tokens' budgets, and the
//     load report to the Governor (the Dispatcher's steps);
//   - batch.go: a batch's store steps (plan, verdicts, deferrals, leases,
//     one reader per target);
//   - verify.go: VerifyClaims, one chunk of claims checked against evidence
//     and recorded in one transaction, in three ways: stored.go (decide
//     from stored evidence, no call), reads.go (read the Graph API with
//     the token's permits) and audit.go (re-check provisional approvals);
//     group.go holds the grouped read of a target's edge they share;
//   - poison.go: a claim whose check panics is quarantined, not its batch.
//
// Secrets never travel in activity inputs or results: inputs name a token by
// id and the activity opens it (tokens.Sessions).
package activities

import (
	"time"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/limiter"
)

// Activities is registered with the worker (every exported method is an
// activity); its fields are its dependencies.
type Activities struct {
	Store store.Store
	// Tokens opens Graph sessions for tokens known by id, and says which
	// token reads a tenant's evidence.
	Tokens *tokens.Sessions
	// Limiter gives the permits every Graph call spends.
	Limiter *limiter.Client
	// Governor takes the Dispatcher's load report and says each tenant's
	// mode for claiming.
	Governor *governor.Client
	// UserRiskTTL is how long (wall time) a user with a false claim is
	// verified one by one; 0 disables per-user risk.
	UserRiskTTL time.Duration
	// Now is the clock for leases and backoffs; nil means time.Now.
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now().UTC()
}

// Verdict methods.
const (
	MethodGraph   = "graph"           // decided by reading the Graph API
	MethodRule    = "rule"            // decided by a rule, without a call (unverifiable kinds)
	MethodSample  = "sample"          // approved because the batch's sample passed the sampling plan
	MethodHonor   = "honor"           // approved on honor: the Governor's honor mode
	MethodAudit   = store.MethodAudit // revoked by the audit of a provisional approval
	MethodWebhook = "webhook"         // verified by an action a Meta webhook reported: no call
)
