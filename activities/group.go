package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// maxPagesPerTarget bounds one read of an object's edge. Comments come
// newest first and a read stops at the oldest claim's `since`, so only very
// busy objects reach it (40 pages: 2,000 comments).
const maxPagesPerTarget = 40

// edgeRead says how a claim kind is proven by one paged read of an edge of
// its target, shared by every claim on that target.
type edgeRead struct {
	edge, fields, endpoint string
}

// edgeOf returns the paged read that proves claims of a kind, or false for
// kinds checked claim by claim (mentions: one media per claim).
func edgeOf(k claim.Kind) (edgeRead, bool) {
	switch k {
	case claim.IGComment:
		return edgeRead{"comments", "id,text,timestamp,username,from{id,username}", "GET /{ig-media-id}/comments"}, true
	case claim.IGTag:
		return edgeRead{"tags", "id,username,caption,timestamp,media_type", "GET /{ig-user-id}/tags"}, true
	case claim.FBComment:
		return edgeRead{"comments", "id,message,created_time,from{id,name}", "GET /{post-id}/comments"}, true
	case claim.FBReaction:
		return edgeRead{"reactions", "id,name,type", "GET /{post-id}/reactions"}, true
	}
	return edgeRead{}, false
}

// targetGroup is the claims of a chunk on one object's edge.
type targetGroup struct {
	target string
	read   edgeRead
	claims []store.Claim
}

// groupByTarget splits claims into target groups (in order of first
// appearance: claims come sorted by target) and the claims checked one by one.
func groupByTarget(claims []store.Claim) (groups []*targetGroup, single []store.Claim) {
	index := map[string]*targetGroup{}
	for _, c := range claims {
		r, ok := edgeOf(c.Kind)
		if !ok {
			single = append(single, c)
			continue
		}
		key := c.Target + "/" + r.edge
		g := index[key]
		if g == nil {
			g = &targetGroup{target: c.Target, read: r}
			index[key] = g
			groups = append(groups, g)
		}
		g.claims = append(g.claims, c)
	}
	return groups, single
}

// outcome is what a group check found for one claim.
type outcome struct {
	claim  store.Claim
	found  bool
	source string // store.SourceGraph or store.SourceWebhook: where the proof came from
	ev     Evidence
	err    error // the claim could not be checked (the read failed), or its check panicked (a *panicError: poison)
	// unread: a stored-only check found neither proof nor coverage; the
	// claim waits for a read, even on a final check.
	unread bool
}

// known is the evidence held for one target edge: stored actions (from
// earlier reads and webhooks) and the stored coverage of earlier reads.
type known struct {
	actions  []store.EvidenceAction
	coverage *store.Coverage
}

// covers says whether a complete read, made at least grace after the claim
// was submitted, reached back to the claim's since: the read would have seen
// the claimant's action had it existed.
func covers(cov *store.Coverage, c store.Claim, grace time.Duration) bool {
	if cov == nil || cov.ReadAt.Before(c.SubmittedAt.Add(grace)) {
		return false
	}
	if cov.From.IsZero() {
		return true // the read reached the edge's last page
	}
	return c.Since != nil && !cov.From.After(*c.Since)
}

// matchStored looks for proof of c among stored actions.
func matchStored(c store.Claim, actions []store.EvidenceAction) (store.EvidenceAction, bool) {
	for _, sa := range actions {
		if sa.Deleted {
			continue
		}
		if evidence.Check(c.Claim, toAction(sa)) == evidence.NoMatch {
			return sa, true
		}
	}
	return store.EvidenceAction{}, false
}

func toAction(sa store.EvidenceAction) evidence.Action {
	return evidence.Action{ID: sa.ActionID, Username: sa.Username, UserID: sa.UserID, Text: sa.Text, Time: sa.Time}
}

// edgeCheck decides the claims of one target edge with as few calls as
// possible: stored evidence first (earlier reads, webhooks: no call), then
// stored coverage (absence known without a call), then, when allowed, one
// paged read for all remaining claims (read).
//
// Each claim's matching runs under guard (pz), and so does each page's read:
// a claim whose matching panics is poison alone; a read that panics poisons
// the claims still waiting for it (those earlier pages proved stand).
type edgeCheck struct {
	g      *targetGroup
	k      known
	stored []evidence.Action // k's live actions, as the matcher sees them
	pz     *poisons
}

// newEdgeCheck prepares the check of g against what is held on it. When
// even that panics, every claim of the group is poison: outs lists them
// and the check is nil.
func newEdgeCheck(g *targetGroup, k known, pz *poisons) (*edgeCheck, []outcome) {
	e := &edgeCheck{g: g, k: k, pz: pz}
	if perr := pz.run(func() { e.stored = liveActions(k.actions) }); perr != nil { // converted once, for every claim's reason
		outs := make([]outcome, 0, len(g.claims))
		for _, c := range g.claims {
			outs = append(outs, outcome{claim: c, err: perr})
		}
		return nil, outs
	}
	return e, nil
}

// settleStored decides what stored evidence can: a stored action proves a
// claim; stored coverage read at least grace after a claim's submission
// shows its absence. The rest is open, for a read.
func (e *edgeCheck) settleStored(grace time.Duration) (outs []outcome, open []store.Claim) {
	g := e.g
	for _, c := range g.claims {
		var (
			o       outcome
			settled bool
		)
		perr := e.pz.run(func() {
			if sa, ok := matchStored(c, e.k.actions); ok {
				action := toAction(sa)
				o, settled = outcome{claim: c, found: true, source: sa.Source,
					ev: Evidence{Endpoint: g.read.endpoint, Object: g.target, Match: &action, Source: "stored " + sa.Source}}, true
				return
			}
			if covers(e.k.coverage, c, grace) {
				o, settled = outcome{claim: c, ev: Evidence{Endpoint: g.read.endpoint, Object: g.target,
					Reason: string(mismatchAmong(c, e.stored)), Source: "stored coverage"}}, true
			}
		})
		switch {
		case perr != nil:
			outs = append(outs, outcome{claim: c, err: perr})
		case settled:
			outs = append(outs, o)
		default:
			open = append(open, c)
		}
	}
	return outs, open
}

// unread reports open claims as waiting for a read.
func (e *edgeCheck) unread(open []store.Claim) []outcome {
	outs := make([]outcome, 0, len(open))
	for _, c := range open {
		outs = append(outs, outcome{claim: c, unread: true, ev: Evidence{Endpoint: e.g.read.endpoint, Object: e.g.target, Reason: "not read yet"}})
	}
	return outs
}

// read makes one paged read for every open claim, newest first, stopping
// when every claim is proven, when the pages are older than the oldest
// claim's since, or when they reach what an earlier read covered. It
// returns each claim's outcome, what it read (to store for later claims)
// and the span it covered. lag: how far (in Meta's time) a read goes back
// past where an earlier read ended, for actions Meta showed late; readAt
// is when the read is made (our clock).
func (e *edgeCheck) read(pace *limiter.Pacer, s *graph.Session, open []store.Claim, lag time.Duration, readAt time.Time) (outs []outcome, read []store.EvidenceAction, cov *store.Coverage, calls int) {
	g, k, pz := e.g, e.k, e.pz
	// It may stop at the oldest since, or where the stored coverage begins
	// when that reaches back far enough.
	need, needAll := time.Time{}, false
	for _, c := range open {
		if c.Since == nil {
			needAll = true
		} else if need.IsZero() || c.Since.Before(need) {
			need = *c.Since
		}
	}
	joinable := k.coverage != nil && (k.coverage.From.IsZero() || (!needAll && !k.coverage.From.After(need)))
	pager := s.Edge(g.target, g.read.edge, g.read.fields)
	var seen []evidence.Action
	var from time.Time // oldest action time the read reached
	complete, joined := false, false
	var readErr, readPanic error
	pending := slices.Clone(open)
	found := map[int64]evidence.Action{}
	poisoned := map[int64]error{}
	for !pager.Done() && pager.Calls < maxPagesPerTarget {
		if err := pace.Before(); err != nil {
			readErr = err
			break
		}
		var (
			page []evidence.Action
			err  error
		)
		if readPanic = pz.run(func() { page, err = pager.Next() }); readPanic != nil {
			break // the permit is spent: the call may have been made
		}
		pace.After(pager.Usage, err)
		if err != nil {
			readErr = err
			break
		}
		seen = append(seen, page...)
		pending = slices.DeleteFunc(pending, func(c store.Claim) bool {
			var (
				action evidence.Action
				m      evidence.Mismatch
			)
			if perr := pz.run(func() { action, m = evidence.Find(c.Claim, page) }); perr != nil {
				poisoned[c.ID] = perr
				return true
			}
			if m == evidence.NoMatch {
				found[c.ID] = action
				return true
			}
			return false
		})
		oldest, timed := oldestOf(page)
		if timed && (from.IsZero() || oldest.Before(from)) {
			from = oldest
		}
		if len(pending) == 0 {
			break
		}
		if timed && !needAll && oldest.Before(need) {
			break // older than every open claim's since: later pages cannot prove them
		}
		if timed && joinable && !oldest.After(k.coverage.To.Add(-lag)) {
			joined = true // the rest was read before
			break
		}
	}
	complete = pager.Done() && readErr == nil && readPanic == nil
	calls = pager.Calls

	for _, action := range seen {
		read = append(read, store.EvidenceAction{Target: g.target, Edge: g.read.edge, ActionID: action.ID,
			Username: action.Username, UserID: action.UserID, Text: action.Text, Time: action.Time,
			Source: store.SourceGraph, SeenAt: readAt})
	}
	// Coverage needs a known start: the last page, where an earlier read
	// began, or the oldest time read (an untimed edge read only in part,
	// reactions past the page cap, covers nothing).
	if readErr == nil && readPanic == nil && (complete || joined || !from.IsZero()) {
		c := store.Coverage{Target: g.target, Edge: g.read.edge, From: from, To: newestOf(seen), ReadAt: readAt}
		switch {
		case complete:
			c.From = time.Time{}
		case joined:
			c.From = k.coverage.From
		}
		if c.To.IsZero() {
			// Nothing timed was read (reactions, an empty edge): the read
			// time stands in; such coverage is only ever complete.
			c.To = readAt
		}
		cov = &c
	}

	candidates := append(slices.Clip(e.stored), seen...)
	for _, c := range open {
		ev := Evidence{Endpoint: g.read.endpoint, Object: g.target, Pages: pager.Calls, Scanned: len(seen)}
		if perr, ok := poisoned[c.ID]; ok {
			outs = append(outs, outcome{claim: c, err: perr})
			continue
		}
		if action, ok := found[c.ID]; ok {
			ev.Match = &action
			outs = append(outs, outcome{claim: c, found: true, source: store.SourceGraph, ev: ev})
			continue
		}
		if readPanic != nil {
			outs = append(outs, outcome{claim: c, err: readPanic})
			continue
		}
		if readErr != nil {
			outs = append(outs, outcome{claim: c, err: readErr})
			continue
		}
		var m evidence.Mismatch
		if perr := pz.run(func() { m = mismatchAmong(c, candidates) }); perr != nil {
			outs = append(outs, outcome{claim: c, err: perr})
			continue
		}
		ev.Reason = string(m)
		outs = append(outs, outcome{claim: c, ev: ev})
	}
	return outs, read, cov, calls
}

// liveActions are the stored actions not reported removed.
func liveActions(actions []store.EvidenceAction) []evidence.Action {
	list := make([]evidence.Action, 0, len(actions))
	for _, sa := range actions {
		if !sa.Deleted {
			list = append(list, toAction(sa))
		}
	}
	return list
}

// mismatchAmong is why the claimant's own actions (if any) do not prove c.
func mismatchAmong(c store.Claim, actions []evidence.Action) evidence.Mismatch {
	_, m := evidence.Find(c.Claim, actions)
	return m
}

// oldestOf is the oldest action time on a page; timed is false when some
// action has no time (reactions), so the page says nothing about age.
func oldestOf(page []evidence.Action) (oldest time.Time, timed bool) {
	if len(page) == 0 {
		return time.Time{}, false
	}
	for _, a := range page {
		if a.Time.IsZero() {
			return time.Time{}, false
		}
		if oldest.IsZero() || a.Time.Before(oldest) {
			oldest = a.Time
		}
	}
	return oldest, true
}

func newestOf(actions []evidence.Action) time.Time {
	var t time.Time
	for _, a := range actions {
		if a.Time.After(t) {
			t = a.Time
		}
	}
	return t
}

// knownEvidence loads what the store holds on the groups' targets, by
// "target/edge".
func (a *Activities) knownEvidence(ctx context.Context, groups []*targetGroup) (map[string]known, error) {
	held := map[string]known{}
	if len(groups) == 0 {
		return held, nil
	}
	targets := make([]string, 0, len(groups))
	for _, g := range groups {
		targets = append(targets, g.target)
	}
	// One call, one snapshot: coverage read apart from the actions could
	// vouch for an action this batch never saw, and reject its claim.
	actions, covs, err := a.Store.Evidence(ctx, targets)
	if err != nil {
		return nil, fmt.Errorf("stored evidence: %w", err)
	}
	for _, sa := range actions {
		k := held[sa.Target+"/"+sa.Edge]
		k.actions = append(k.actions, sa)
		held[sa.Target+"/"+sa.Edge] = k
	}
	for _, c := range covs {
		k := held[c.Target+"/"+c.Edge]
		k.coverage = &c
		held[c.Target+"/"+c.Edge] = k
	}
	return held, nil
}

// ReadOf names the Graph edge and fields whose paged read proves claims of
// kind k; ok is false for kinds checked claim by claim (mentions) or not at
// all. The bench's seed-baseline reads the first page only, as the user's
// plan did.
func ReadOf(k claim.Kind) (edge, fields string, ok bool) {
	r, ok := edgeOf(k)
	return r.edge, r.fields, ok
}
