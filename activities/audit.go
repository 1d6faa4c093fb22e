package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// NextAuditInput asks for the oldest provisional approvals to audit.
type NextAuditInput struct {
	Limit  int
	MinAge time.Duration // approvals younger than this wait: Meta's data may lag behind the user
	Skip   []int64       // claims the audit could not check lately
}

// AuditGroup is one token's share of an audit round.
type AuditGroup struct {
	TenantID string
	TokenID  string
	ClaimIDs []int64
}

// NextAudit lists provisional approvals (approved_by_sample,
// approved_on_honor) not yet audited, oldest decision first, grouped by the
// token that can read them: a premium tenant's own token, else the
// platform's. Groups come in the order of their oldest claim.
func (a *Activities) NextAudit(ctx context.Context, in NextAuditInput) ([]AuditGroup, error) {
	claims, err := a.Store.AuditQueue(ctx, in.Limit+len(in.Skip), a.now().Add(-in.MinAge))
	if err != nil {
		return nil, fmt.Errorf("next audit: %w", err)
	}
	var groups []AuditGroup
	index := map[string]int{}
	tokens := map[string]string{}
	taken := 0
	for _, c := range claims {
		if taken == in.Limit {
			break
		}
		if slices.Contains(in.Skip, c.ID) {
			continue
		}
		tokenID, ok := tokens[c.Tenant]
		if !ok {
			t, err := a.Store.Tenant(ctx, c.Tenant)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("next audit: %w", err)
			}
			tokenID, _ = a.Tokens.ReaderOf(t, false) // an unknown tenant: the platform token
			tokens[c.Tenant] = tokenID
		}
		key := c.Tenant + "\x00" + tokenID
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, AuditGroup{TenantID: c.Tenant, TokenID: tokenID})
		}
		groups[i].ClaimIDs = append(groups[i].ClaimIDs, c.ID)
		taken++
	}
	return groups, nil
}

// audit reads provisional approvals again, like verifyWithPermits but with
// the audit's rules: proof confirms an approval (marked audited), none
// revokes it with the evidence of the read (its user becomes risky).
// Audited claims were approved at least a grace delay ago: proof missing
// now is missing.
func (k *chunk) audit(ctx context.Context) error {
	k.proven = func(o outcome) { k.out.Confirmed = append(k.out.Confirmed, o.claim.ID) }
	k.unproven = func(o outcome) {
		k.out.Revoked = append(k.out.Revoked, store.Revocation{ClaimID: o.claim.ID, Evidence: o.ev.json()})
	}
	return k.verifyWithPermits(ctx)
}

// auditable: a provisional approval (sample, honor) not yet audited.
func auditable(c store.Claim) bool {
	return c.Status == store.StatusDecided && c.AuditedAt.IsZero() &&
		(c.Verdict == store.VerdictApprovedBySample || c.Verdict == store.VerdictApprovedOnHonor)
}
