package policy_test

import (
	"slices"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/policy"
)

func TestTargetQuotas(t *testing.T) {
	// 200 calls an hour are 20 reads in 6 minutes: 10 new targets at 2
	// reads each, less a read for each target already in flight.
	budgets := map[string]policy.TokenBudget{
		"platform": {Calls: 200, Window: time.Hour},
		"slow":     {Calls: 20, Window: time.Hour}, // 2 reads in 6 minutes: 1 new target
		"crawl":    {Calls: 1, Window: 24 * time.Hour},
	}
	const horizon = 6 * time.Minute
	reading := func(tenant, token string, ready, inFlight int) policy.ClaimDemand {
		return policy.ClaimDemand{Tenant: tenant, Token: token, Reads: true, ReadyTargets: ready, InFlightTargets: inFlight}
	}
	tests := []struct {
		name    string
		demands []policy.ClaimDemand
		want    []int
	}{
		{"one tenant takes the whole budget", []policy.ClaimDemand{reading("a", "platform", 30, 0)}, []int{10}},
		{"fewer ready targets than the budget", []policy.ClaimDemand{reading("a", "platform", 4, 0)}, []int{4}},
		{"targets in flight cost a read each", []policy.ClaimDemand{reading("a", "platform", 30, 7)}, []int{6}},
		{"budget spent by batches in flight", []policy.ClaimDemand{reading("a", "platform", 30, 20)}, []int{0}},
		{"less than a target's reads left", []policy.ClaimDemand{reading("a", "platform", 30, 19)}, []int{0}},
		{"equal shares on a shared token",
			[]policy.ClaimDemand{reading("a", "platform", 30, 0), reading("b", "platform", 30, 0)}, []int{5, 5}},
		{"what one tenant cannot use goes to the others",
			[]policy.ClaimDemand{reading("a", "platform", 1, 0), reading("b", "platform", 30, 0), reading("c", "platform", 2, 0)}, []int{1, 7, 2}},
		{"odd targets go to earlier tenants first",
			[]policy.ClaimDemand{reading("a", "platform", 30, 0), reading("b", "platform", 30, 0), reading("c", "platform", 30, 0)}, []int{4, 3, 3}},
		{"in-flight targets of one tenant shrink the share of all",
			[]policy.ClaimDemand{reading("a", "platform", 30, 6), reading("b", "platform", 30, 0)}, []int{4, 3}},
		{"a tenant with nothing in flight always gets one target",
			[]policy.ClaimDemand{reading("a", "crawl", 5, 0), reading("b", "slow", 3, 0)}, []int{1, 1}},
		{"but a slow token with a batch in flight gets none",
			[]policy.ClaimDemand{reading("a", "slow", 5, 1)}, []int{0}},
		{"nothing ready, nothing leased", []policy.ClaimDemand{reading("a", "platform", 0, 0)}, []int{0}},
		{"tokens are budgeted separately",
			[]policy.ClaimDemand{reading("a", "slow", 9, 0), reading("b", "platform", 9, 0)}, []int{1, 9}},
		{"sampling and honor batches are not bounded",
			[]policy.ClaimDemand{{Tenant: "a", Token: "platform", ReadyTargets: 50}, reading("b", "platform", 50, 0)}, []int{policy.Unbounded, 10}},
		{"a token without a known budget is not bounded",
			[]policy.ClaimDemand{reading("a", "unknown", 50, 3)}, []int{policy.Unbounded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.TargetQuotas(tt.demands, budgets, horizon)
			if !slices.Equal(got, tt.want) {
				t.Errorf("TargetQuotas = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenBudgetReadsWithin(t *testing.T) {
	tests := []struct {
		b       policy.TokenBudget
		horizon time.Duration
		want    int
	}{
		{policy.TokenBudget{Calls: 200, Window: time.Hour}, 15 * time.Minute, 50},
		{policy.TokenBudget{Calls: 4800, Window: 24 * time.Hour}, time.Hour, 200},
		{policy.TokenBudget{Calls: 200, Window: time.Hour}, 0, 0},
		{policy.TokenBudget{Calls: 0, Window: time.Hour}, time.Hour, 0},
		{policy.TokenBudget{Calls: 1, Window: time.Hour}, time.Hour, 1},
		{policy.TokenBudget{Calls: 1, Window: time.Hour}, 30 * time.Minute, 0},
	}
	for _, tt := range tests {
		if got := tt.b.ReadsWithin(tt.horizon); got != tt.want {
			t.Errorf("%+v within %v = %d, want %d", tt.b, tt.horizon, got, tt.want)
		}
	}
}
