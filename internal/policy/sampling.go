// Package policy holds the verification strategy as pure code: which claims
// of a batch to sample, and when a sample is enough to approve the rest.
package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// SamplingPlan decides, claim by claim, whether a batch's sample shows its
// failure rate (the share of false claims) to be acceptable, to be too high,
// or not yet either. It is Wald's sequential probability ratio test between
// an acceptable failure rate and a rejectable one:
//
//   - the user's plan: approve a batch when 85% of its sample passes, so a
//     batch failing 15% or more (RejectableFailure) must not be approved;
//   - a batch failing AcceptableFailure or less should be approved.
//
// With the default risks, a batch whose true failure rate is 15% or more is
// approved with probability at most 5% (ConsumerRisk; 3% measured at 15%,
// 0.1% at 20%), and a batch at 10% is approved about 4 times in 5 (the test's
// 10% ProducerRisk, plus samples still undecided at MaxSample, which escalate).
// The example test prints the whole operating characteristic.
// Telling 10% from 15% takes evidence: about 200 sampled claims near those
// rates, far fewer when the batch is clean or plainly bad. The user's 1% of a
// 500-claim batch (5 claims) cannot tell them apart, so the plan samples at
// least MinSample and goes on until the test decides; a batch whose sample
// reaches MaxSample without a decision is escalated, never approved.
type SamplingPlan struct {
	AcceptableFailure float64 // p0, default 0.10
	RejectableFailure float64 // p1, default 0.15 (1 - the user's 85% pass threshold)
	ConsumerRisk      float64 // β: P(approve | failure ≥ p1), default 0.05
	ProducerRisk      float64 // α: P(escalate | failure ≤ p0), default 0.10
	MinSample         int     // default 20
	MaxSample         int     // default 400
	SampleRate        float64 // the user's 1%: a floor on the sample, as a share of the batch
}

// DefaultSamplingPlan is the plan above.
func DefaultSamplingPlan() SamplingPlan {
	return SamplingPlan{
		AcceptableFailure: 0.10, RejectableFailure: 0.15,
		ConsumerRisk: 0.05, ProducerRisk: 0.10,
		MinSample: 20, MaxSample: 400, SampleRate: 0.01,
	}
}

// Validate reports a plan that cannot work.
func (p SamplingPlan) Validate() error {
	switch {
	case !(0 < p.AcceptableFailure && p.AcceptableFailure < p.RejectableFailure && p.RejectableFailure < 1):
		return fmt.Errorf("need 0 < acceptable failure (%v) < rejectable failure (%v) < 1", p.AcceptableFailure, p.RejectableFailure)
	case !(0 < p.ConsumerRisk && p.ConsumerRisk < 0.5 && 0 < p.ProducerRisk && p.ProducerRisk < 0.5):
		return errors.New("risks must be between 0 and 0.5")
	case p.MinSample < 1 || p.MaxSample < p.MinSample:
		return fmt.Errorf("need 1 <= min sample (%d) <= max sample (%d)", p.MinSample, p.MaxSample)
	case p.SampleRate < 0 || p.SampleRate > 1:
		return fmt.Errorf("sample rate %v is not a share", p.SampleRate)
	}
	return nil
}

// Verdict of a sample so far.
type Verdict int

const (
	Continue Verdict = iota // sample more
	Approve                 // the batch's unsampled claims may be approved (provisionally)
	Escalate                // verify more of the batch, up to all of it
)

func (v Verdict) String() string {
	return [...]string{"continue", "approve", "escalate"}[v]
}

// InitialSample is how many claims of a batch of n to sample first.
func (p SamplingPlan) InitialSample(n int) int {
	k := max(p.MinSample, int(math.Ceil(p.SampleRate*float64(n))))
	return min(k, n)
}

// Decide judges a sample of `sampled` claims of which `failed` were false, from
// a batch of batchSize claims. A sample that covers the whole batch needs no
// statistics: every claim has its own verdict, and the batch is "approved"
// only in the sense that nothing is left to approve.
func (p SamplingPlan) Decide(batchSize, sampled, failed int) Verdict {
	if sampled >= batchSize {
		return Approve
	}
	if sampled < p.InitialSample(batchSize) {
		return Continue
	}
	llr := p.logLikelihoodRatio(sampled, failed)
	lower := math.Log(p.ConsumerRisk / (1 - p.ProducerRisk))
	upper := math.Log((1 - p.ConsumerRisk) / p.ProducerRisk)
	switch {
	case llr >= upper:
		return Escalate
	case llr <= lower:
		return Approve
	case sampled >= p.MaxSample:
		return Escalate // undecided after the most we sample: never approve on doubt
	}
	return Continue
}

// logLikelihoodRatio is log P(sample | p1) / P(sample | p0).
func (p SamplingPlan) logLikelihoodRatio(sampled, failed int) float64 {
	p0, p1 := p.AcceptableFailure, p.RejectableFailure
	return float64(failed)*math.Log(p1/p0) + float64(sampled-failed)*math.Log((1-p1)/(1-p0))
}

// PickSample chooses k of ids deterministically from a seed (a workflow
// identity), sorted: the first k of SampleOrder.
func PickSample(ids []int64, k int, seed string) []int64 {
	order := SampleOrder(ids, seed)
	out := order[:min(k, len(order))]
	slices.Sort(out)
	return out
}

// SampleOrder ranks ids for sampling: a sample of k is the first k, and a
// larger one extends it. The same ids and seed always give the same order,
// so a workflow's choice replays and shows in its history. Each id's rank is
// a hash of seed and id, so samples spread over users and targets whatever
// the ids' order.
func SampleOrder(ids []int64, seed string) []int64 {
	type ranked struct {
		id   int64
		rank uint64
	}
	rs := make([]ranked, len(ids))
	for i, id := range ids {
		h := sha256.Sum256([]byte(seed + "/" + strconv.FormatInt(id, 10)))
		rs[i] = ranked{id, binary.BigEndian.Uint64(h[:8])}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.id, b.id))
	})
	out := make([]int64, len(rs))
	for i := range out {
		out[i] = rs[i].id
	}
	return out
}
