package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// verifyWithPermits checks the chunk against stored evidence first, then
// reads the Graph API for what is left: one paged read per target edge,
// one call per mention. Every call spends a permit the pacer reserves from
// the token's limiter as the reads go: the chunk's only negotiation. When
// the limiter has none soon enough the unchecked claims come back in
// NeedPermits with the time to ask again, for the workflow to wait.
func (k *chunk) verifyWithPermits(ctx context.Context) error {
	in := k.in
	if len(k.groups)+len(k.single) == 0 {
		return nil // decided since the chunk was planned
	}
	session, err := k.a.Tokens.Open(ctx, in.TokenID)
	if err != nil {
		// A token we cannot even load is a broken token: nothing is rejected.
		k.log.Error("token unusable", "TokenID", in.TokenID, "error", err)
		for _, c := range k.claims() {
			k.res.Deferred = append(k.res.Deferred, Failed{ClaimID: c.ID, Class: graph.TokenBroken, Reason: err.Error()})
		}
		return nil
	}
	pace := k.a.Limiter.Pacer(ctx, in.TokenID, in.Class)
	defer func() {
		// Unused permits go back; usage and throttles steer the limiter.
		if err := pace.Close(context.WithoutCancel(ctx)); err != nil {
			k.log.Warn("limiter report not sent", "TokenID", in.TokenID, "error", err)
		}
	}()
	// Permits first: a chunk the limiter has none for goes back to wait
	// without loading the evidence on its targets (thousands of comments on
	// a busy post), however often it asks.
	pace.Want(len(k.groups) + len(k.single))
	if err := pace.Reserve(); err != nil {
		for _, c := range k.claims() {
			k.apply(outcome{claim: c, err: err})
		}
		k.res.RetryAt, k.res.Paused = pace.RetryAt(), pace.Paused()
		return nil
	}
	if err := k.loadEvidence(ctx); err != nil {
		return err
	}
	lag := k.a.Limiter.MetaTime(in.Grace)
	for i, g := range k.groups {
		if k.outOfPermits || k.stop != nil {
			for _, c := range g.claims {
				k.skip(c)
			}
			continue
		}
		activity.RecordHeartbeat(ctx, i)
		pace.Want(len(k.groups) - i + len(k.single))
		e, outs := newEdgeCheck(g, k.held[g.target+"/"+g.read.edge], &k.pz)
		if e != nil {
			var open []store.Claim
			outs, open = e.settleStored(k.grace)
			if len(open) > 0 {
				read, evidence, cov, calls := e.read(pace, session, open, lag, k.a.now())
				k.res.Calls += calls
				outs = append(outs, read...)
				k.out.Evidence = append(k.out.Evidence, evidence...)
				if cov != nil {
					k.out.Coverages = append(k.out.Coverages, *cov)
				}
			}
		}
		k.res.Groups++
		for _, o := range outs {
			k.apply(o)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	for i, c := range k.single {
		if k.skip(c) {
			continue
		}
		activity.RecordHeartbeat(ctx, len(k.groups)+i)
		pace.Want(len(k.single) - i)
		ev, found, calls, err := k.checkMention(pace, session, c)
		k.res.Calls += calls
		k.apply(outcome{claim: c, found: found, ev: ev, err: err, source: store.SourceGraph})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	k.res.Wasted = pace.Wasted()
	if k.outOfPermits {
		k.res.RetryAt, k.res.Paused = pace.RetryAt(), pace.Paused()
	}
	return nil
}

// claims lists the chunk's open claims.
func (k *chunk) claims() []store.Claim {
	all := append([]store.Claim(nil), k.single...)
	for _, g := range k.groups {
		all = append(all, g.claims...)
	}
	return all
}

// checkMention reads the Graph API for one mention claim (one media per
// claim, named by the claim): found reports proof, ev describes what was
// read either way. The call and the matching run under guard (pz): a panic
// in them makes the claim poison (err a *panicError).
func (k *chunk) checkMention(pace *limiter.Pacer, s *graph.Session, c store.Claim) (ev Evidence, found bool, calls int, err error) {
	ev.Object = c.Target
	if c.Kind != claim.IGMention {
		return ev, false, 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("kind %s has no Graph check", c.Kind), "Unverifiable", nil)
	}
	ev.Endpoint = "GET /{ig-user-id}?fields=mentioned_media"
	tenant, err := k.tenant()
	if err != nil {
		return ev, false, 0, err
	}
	brand := tenant.InstagramAccount()
	if brand == "" {
		return ev, false, 0, &graph.Error{Class: graph.Permanent, Op: ev.Endpoint, Message: "tenant has no Instagram account"}
	}
	if err := pace.Before(); err != nil {
		return ev, false, 0, err
	}
	var (
		action evidence.Action
		usage  graph.Usage
	)
	if perr := k.pz.run(func() { action, usage, err = s.MentionedMedia(brand, c.Target) }); perr != nil {
		return ev, false, 1, perr // the permit is spent: the call may have been made
	}
	pace.After(usage, err)
	if err != nil {
		return ev, false, 1, err
	}
	ev.Pages, ev.Scanned = 1, 1
	var m evidence.Mismatch
	if perr := k.pz.run(func() { m = evidence.Check(c.Claim, action) }); perr != nil {
		return ev, false, 1, perr
	}
	if m != evidence.NoMatch {
		ev.Reason = string(m)
		return ev, false, 1, nil
	}
	ev.Match = &action
	return ev, true, 1, nil
}

// tenant loads the chunk's tenant once (mentions need its Instagram account).
func (k *chunk) tenant() (store.Tenant, error) {
	if k.tenantLoaded == nil {
		t, err := k.a.Store.Tenant(k.ctx, k.in.TenantID)
		if err != nil {
			return t, fmt.Errorf("tenant %s: %w", k.in.TenantID, err)
		}
		k.tenantLoaded = &t
	}
	return *k.tenantLoaded, nil
}
