package activities

import (
	"context"

	"github.com/socialproof/verifier/internal/store"
)

// decideFromStored decides the chunk from stored evidence alone, with no
// call and so no permit: webhook deliveries and earlier reads prove claims,
// and on the Final re-check a stored read made at least a grace delay after
// a claim's submission disproves it. What is neither proven nor covered
// comes back Absent, for a read.
func (k *chunk) decideFromStored(ctx context.Context) error {
	if err := k.loadEvidence(ctx); err != nil {
		return err
	}
	for _, g := range k.groups {
		e, outs := newEdgeCheck(g, k.held[g.target+"/"+g.read.edge], &k.pz)
		if e != nil {
			var open []store.Claim
			outs, open = e.settleStored(k.grace)
			outs = append(outs, e.unread(open)...)
		}
		k.res.Groups++
		for _, o := range outs {
			k.apply(o)
		}
	}
	for _, c := range k.single {
		k.apply(outcome{claim: c, unread: true, ev: Evidence{Object: c.Target, Reason: "not read yet"}})
	}
	return nil
}
