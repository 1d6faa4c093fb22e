package policy

import "time"

// Budget-aware claiming. A claim leased to a batch waits for its token's
// permits; if the Dispatcher leased every open claim of a tenant whose token
// is slow, those claims would sit leased for hours while the capacity of
// other tokens went unused. So each run leases, per tenant, only claims on
// as many targets as its token can read within a horizon, counting the
// targets its batches already hold. One read of a target proves every claim
// on it (grouped reads), so the unit of cost is the target, not the claim;
// targets fed by webhooks cost nothing up front and are never bounded.

// ReadsPerTarget is what deciding the claims on one target is expected to
// cost: a first read, and a recheck after the grace delay for the claims it
// did not prove.
const ReadsPerTarget = 2

// ReadsInFlight is what a target a batch already holds is expected to cost
// still: most are read once already, or never needed more than one read.
// Counting them at a full ReadsPerTarget would leave the token idle while
// batches wait out the grace delay.
const ReadsInFlight = 1

// TokenBudget is a token's call budget, in platform time.
type TokenBudget struct {
	Calls  int
	Window time.Duration
}

// ReadsWithin is how many reads the budget allows within horizon (platform time).
func (b TokenBudget) ReadsWithin(horizon time.Duration) int {
	if b.Calls <= 0 || b.Window <= 0 || horizon <= 0 {
		return 0
	}
	return int(float64(b.Calls) * float64(horizon) / float64(b.Window))
}

// ClaimDemand is one tenant's open claims as claiming sees them.
type ClaimDemand struct {
	Tenant string
	// Token is the token whose budget the tenant's reads spend: its own,
	// or the platform token's (shared by every standard tenant).
	Token string
	// Reads: the tenant's batches read evidence for every claim (verify
	// mode). Sampling and honor batches make few or no calls, so their
	// claims are not bounded by the budget.
	Reads bool
	// ReadyTargets counts the targets with claimable claims, not fed by
	// webhooks; InFlightTargets those the tenant's running batches hold,
	// once per batch (each batch reads its own).
	ReadyTargets    int
	InFlightTargets int
}

// Unbounded is the quota of a tenant whose claiming the budget does not bound.
const Unbounded = -1

// TargetQuotas returns, for each demand in order, how many targets' claims
// to lease now, or Unbounded.
//
// A token's reads within the horizon, less what the targets its tenants'
// batches already hold still need, buy new targets at ReadsPerTarget each,
// shared among its reading tenants: every tenant gets an equal share,
// capped by what it has ready, and what one cannot use goes to the others
// (earlier demands first: pass them oldest claim first). A
// tenant with ready targets and none in flight always gets at least one,
// so a token too slow for even one target per horizon still makes progress,
// its claims waiting for permits rather than forever pending. A token with
// no known budget is not bounded.
func TargetQuotas(demands []ClaimDemand, budgets map[string]TokenBudget, horizon time.Duration) []int {
	quotas := make([]int, len(demands))
	// Group reading demands by token, keeping input order within each token
	// and taking tokens in order of first appearance (no map iteration
	// decides an order here).
	var tokens []string
	byToken := map[string][]int{}
	for i, d := range demands {
		b, known := budgets[d.Token]
		if !d.Reads || !known || b.Calls <= 0 || b.Window <= 0 {
			quotas[i] = Unbounded
			continue
		}
		if _, seen := byToken[d.Token]; !seen {
			tokens = append(tokens, d.Token)
		}
		byToken[d.Token] = append(byToken[d.Token], i)
	}
	for _, tok := range tokens {
		idx := byToken[tok]
		reads := budgets[tok].ReadsWithin(horizon)
		for _, i := range idx {
			reads -= demands[i].InFlightTargets * ReadsInFlight
		}
		shareOut(quotas, demands, idx, max(reads/ReadsPerTarget, 0))
		for _, i := range idx {
			if quotas[i] == 0 && demands[i].ReadyTargets > 0 && demands[i].InFlightTargets == 0 {
				quotas[i] = 1
			}
		}
	}
	return quotas
}

// shareOut divides free targets among the demands at idx by water-filling:
// equal shares, each capped by its ready targets, leftovers to the rest.
func shareOut(quotas []int, demands []ClaimDemand, idx []int, free int) {
	var open []int
	for _, i := range idx {
		if demands[i].ReadyTargets > 0 {
			open = append(open, i)
		}
	}
	for free > 0 && len(open) > 0 {
		share := free / len(open)
		if share == 0 {
			// Fewer targets than tenants: one each, earliest first.
			for _, i := range open[:free] {
				quotas[i]++
			}
			return
		}
		var still []int
		for _, i := range open {
			give := min(share, demands[i].ReadyTargets-quotas[i])
			quotas[i] += give
			free -= give
			if quotas[i] < demands[i].ReadyTargets {
				still = append(still, i)
			}
		}
		open = still
	}
}
