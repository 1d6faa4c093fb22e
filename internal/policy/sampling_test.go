package policy_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/socialproof/verifier/internal/policy"
)

func TestDecide(t *testing.T) {
	p := policy.DefaultSamplingPlan()
	tests := []struct {
		name                   string
		batch, sampled, failed int
		want                   policy.Verdict
	}{
		{"below the minimum sample", 500, 19, 0, policy.Continue},
		{"20 clean claims are not yet enough", 500, 20, 0, policy.Continue},
		{"50 clean: still not enough to rule out 15%", 500, 50, 0, policy.Continue},
		{"51 clean: approve", 500, 51, 0, policy.Approve},
		{"7 of 20 false: not yet sure", 500, 20, 7, policy.Continue},
		{"8 of 20 false: escalate", 500, 20, 8, policy.Escalate},
		{"10% false over 400: undecided at the maximum, escalate", 500, 400, 50, policy.Escalate},
		{"1% floor of a big batch comes first", 10_000, 60, 0, policy.Continue},
		{"1% floor reached and clean", 10_000, 100, 0, policy.Approve},
		{"the whole batch sampled: nothing left to approve", 10, 10, 3, policy.Approve},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Decide(tt.batch, tt.sampled, tt.failed); got != tt.want {
				t.Fatalf("Decide(%d, %d, %d) = %s, want %s", tt.batch, tt.sampled, tt.failed, got, tt.want)
			}
		})
	}
}

// operatingCharacteristic samples claims one at a time from a batch with the
// given failure rate until the plan decides, many times, and returns the
// share of batches approved and the mean sample size.
func operatingCharacteristic(p policy.SamplingPlan, batch int, failure float64, trials int, seed uint64) (approved float64, meanSample float64) {
	rng := rand.New(rand.NewPCG(seed, 17))
	approvals, samples := 0, 0
	for range trials {
		// A batch of exactly round(failure*batch) false claims, sampled without replacement.
		bad := int(failure*float64(batch) + 0.5)
		order := rng.Perm(batch)
		sampled, failed := 0, 0
		for {
			if order[sampled] < bad {
				failed++
			}
			sampled++
			v := p.Decide(batch, sampled, failed)
			if v == policy.Continue {
				continue
			}
			if v == policy.Approve && sampled < batch {
				approvals++
			}
			break
		}
		samples += sampled
	}
	return float64(approvals) / float64(trials), float64(samples) / float64(trials)
}

// The stated risks hold: at 15% failure (the user's threshold) a batch is
// approved at most 5% of the time. At 10% it is approved about 4 times in 5:
// the test's 10% producer risk, plus the batches still undecided at the
// maximum sample, which are escalated rather than approved on doubt.
func TestSamplingPlanRisks(t *testing.T) {
	p := policy.DefaultSamplingPlan()
	tests := []struct {
		failure                float64
		minApprove, maxApprove float64
	}{
		{0.00, 0.99, 1},
		{0.02, 0.99, 1},
		{0.10, 0.78, 1},
		{0.15, 0, 0.05},
		{0.20, 0, 0.01},
		{0.40, 0, 0.001},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("failure %.0f%%", tt.failure*100), func(t *testing.T) {
			approved, mean := operatingCharacteristic(p, 2000, tt.failure, 4000, 1)
			t.Logf("approved %.3f, mean sample %.0f", approved, mean)
			if approved < tt.minApprove || approved > tt.maxApprove {
				t.Fatalf("approved %.3f of batches, want within [%v, %v]", approved, tt.minApprove, tt.maxApprove)
			}
		})
	}
}

func TestPickSample(t *testing.T) {
	ids := make([]int64, 500)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	a := policy.PickSample(ids, 25, "batch/acme/20261128T120000Z")
	b := policy.PickSample(ids, 25, "batch/acme/20261128T120000Z")
	if len(a) != 25 || !slices.Equal(a, b) {
		t.Fatalf("not deterministic: %v vs %v", a, b)
	}
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	if c := policy.PickSample(reversed, 25, "batch/acme/20261128T120000Z"); !slices.Equal(a, c) {
		t.Fatal("the sample depends on the ids' order")
	}
	if d := policy.PickSample(ids, 25, "batch/acme/20261128T120100Z"); slices.Equal(a, d) {
		t.Fatal("another batch drew the same sample")
	}
	for i, id := range a {
		if !slices.Contains(ids, id) || (i > 0 && a[i-1] >= id) {
			t.Fatalf("sample %v is not a sorted subset", a)
		}
	}
	if all := policy.PickSample(ids[:3], 10, "x"); len(all) != 3 {
		t.Fatalf("asking for more than there are: %v", all)
	}
	// Spread: the sample is not bunched at one end of the batch.
	if low := a[len(a)/2]; low < 1100 || low > 1400 {
		t.Fatalf("median sampled id %d: sample not spread", low)
	}
}

func TestValidate(t *testing.T) {
	good := policy.DefaultSamplingPlan()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*policy.SamplingPlan){
		"acceptable above rejectable": func(p *policy.SamplingPlan) { p.AcceptableFailure = 0.2 },
		"risk of one half":            func(p *policy.SamplingPlan) { p.ConsumerRisk = 0.5 },
		"max below min":               func(p *policy.SamplingPlan) { p.MaxSample = 5 },
		"rate above one":              func(p *policy.SamplingPlan) { p.SampleRate = 2 },
	} {
		p := good
		change(&p)
		if p.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The default plan's operating characteristic, for a batch of 2,000 claims:
// how often a batch is approved, and how many claims it takes to decide, by
// the batch's true failure rate.
func ExampleSamplingPlan() {
	p := policy.DefaultSamplingPlan()
	fmt.Println("failure  approved  mean sample")
	for _, f := range []float64{0, 0.05, 0.10, 0.12, 0.15, 0.20, 0.40} {
		approved, mean := operatingCharacteristic(p, 2000, f, 2000, 7)
		fmt.Printf("%6.0f%%  %7.1f%%  %11.0f\n", f*100, approved*100, mean)
	}
	// Output:
	// failure  approved  mean sample
	//      0%    100.0%           51
	//      5%    100.0%           86
	//     10%     82.7%          206
	//     12%     37.9%          248
	//     15%      3.4%          164
	//     20%      0.1%           68
	//     40%      0.0%           23
}
