package metasim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// ClaimOptions steers GenerateClaims. Zero values mean the defaults; a
// negative FraudRate or CodeRate means 0.
type ClaimOptions struct {
	FraudRate float64            // share of claims that are false, default 0.1
	Kinds     map[string]float64 // weights; default ig_comment .40, fb_comment .15, fb_reaction .10, ig_tag .10, ig_mention .10, ig_follow .05, ig_like .05, fb_share .05
	CodeRate  float64            // share of comment claims that carry a claim code, default 0.3
	Tenants   []string           // restrict to these brands; default all
}

// GeneratedClaim is one claim line with its ground truth.
type GeneratedClaim struct {
	Line    []byte // one JSON object, no newline
	Tenant  string
	Key     string
	Kind    string
	Genuine bool
}

// Claim kinds.
const (
	KindIGComment  = "ig_comment"
	KindIGMention  = "ig_mention"
	KindIGTag      = "ig_tag"
	KindFBComment  = "fb_comment"
	KindFBReaction = "fb_reaction"
	KindIGFollow   = "ig_follow"
	KindIGLike     = "ig_like"
	KindFBShare    = "fb_share"
)

var defaultKinds = []struct {
	kind string
	w    float64
}{
	{KindIGComment, .40}, {KindFBComment, .15}, {KindFBReaction, .10}, {KindIGTag, .10},
	{KindIGMention, .10}, {KindIGFollow, .05}, {KindIGLike, .05}, {KindFBShare, .05},
}

type claimLine struct {
	Tenant string `json:"tenant"`
	Key    string `json:"key"`
	User   string `json:"user"`
	Handle string `json:"handle"`
	Kind   string `json:"kind"`
	Target string `json:"target"`
	Code   string `json:"code,omitempty"`
	Since  string `json:"since,omitempty"`
}

type truthRec struct {
	Tenant  string `json:"tenant"`
	Key     string `json:"key"`
	Kind    string `json:"kind"`
	Genuine bool   `json:"genuine"`
}

// pairKey is (kind, user, target): one pair never gets both a genuine and a
// fraudulent claim.
type pairKey struct {
	kind   string
	user   *person
	target string
}

type pairState struct {
	genuine bool // a genuine claim was made on this pair
	fraud   bool // a fraudulent claim was made on this pair
	acted   bool // the user has a qualifying action (at or after since) on the target, codes aside
	// uncoded: a fraudulent claim without a code was made on this pair, so no
	// comment at or after since may ever be added to it.
	uncoded bool
}

// Truth returns the ground truth of every generated claim: "tenant/key" → genuine.
func (s *Sim) Truth() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.truthMap))
	for k, v := range s.truthMap {
		out[k] = v
	}
	return out
}

func (s *Sim) truthRecords() []truthRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]truthRec(nil), s.truth...)
}

// GenerateClaims makes n claims and, for the genuine ones, the actions that
// prove them (comments, reactions, media), timestamped around the sim clock.
// Fraudulent claims get no qualifying action; some get near misses (a
// comment on another media, before `since`, or without the code). It may
// return fewer than n claims only in a world too small to keep the rules.
func (s *Sim) GenerateClaims(n int, o ClaimOptions) []GeneratedClaim {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.FraudRate == 0 {
		o.FraudRate = 0.1
	} else if o.FraudRate < 0 {
		o.FraudRate = 0
	}
	if o.CodeRate == 0 {
		o.CodeRate = 0.3
	} else if o.CodeRate < 0 {
		o.CodeRate = 0
	}
	var kinds []string
	var cum []float64
	total := 0.0
	for _, d := range defaultKinds {
		w := d.w
		if o.Kinds != nil {
			w = o.Kinds[d.kind]
		}
		if w > 0 {
			total += w
			kinds = append(kinds, d.kind)
			cum = append(cum, total)
		}
	}
	brands := s.brands
	if len(o.Tenants) > 0 {
		brands = nil
		for _, t := range o.Tenants {
			if b := s.brandByTenant[t]; b != nil {
				brands = append(brands, b)
			}
		}
	}
	if n <= 0 || len(kinds) == 0 || len(brands) == 0 || len(s.users) == 0 {
		return nil
	}
	r := s.crng
	now := s.now().Truncate(time.Second)
	out := make([]GeneratedClaim, 0, n)
	for i := 0; i < n; i++ {
		x := r.Float64() * total
		kind := kinds[sort.SearchFloat64s(cum, x)]
		genuine := r.Float64() >= o.FraudRate
		hasCode := (kind == KindIGComment || kind == KindFBComment) && r.Float64() < o.CodeRate
		mark := s.whMark()
		gc, ok := s.genClaim(r, now, brands, kind, genuine, hasCode)
		if !ok {
			continue
		}
		s.whTag(mark, gc.Tenant+"/"+gc.Key)
		out = append(out, gc)
	}
	return out
}

// targetsOf lists the possible targets of a kind for a brand with their since.
func targetsOf(b *brand, kind string) (ids []string, since []time.Time) {
	switch kind {
	case KindIGComment, KindIGLike:
		for _, m := range b.ownMedia {
			ids, since = append(ids, m.id), append(since, m.since)
		}
	case KindFBComment, KindFBReaction, KindFBShare:
		for _, p := range b.posts {
			ids, since = append(ids, p.id), append(since, p.since)
		}
	case KindIGTag, KindIGFollow:
		ids, since = []string{b.igID}, []time.Time{b.igSince}
	}
	return
}

// compatible reports whether a claim with this truth can be made on a pair
// without breaking the rules.
func compatible(kind string, st *pairState, genuine, hasCode bool) bool {
	if st == nil {
		return true
	}
	if genuine {
		return !st.fraud
	}
	if st.genuine {
		return false
	}
	if st.acted {
		// A comment without any code exists: only a claim asking for a fresh
		// code stays false. Reactions and tags cannot be made false again.
		return (kind == KindIGComment || kind == KindFBComment) && hasCode
	}
	return true
}

func (s *Sim) pair(kind string, u *person, target string) *pairState {
	k := pairKey{kind, u, target}
	st := s.pairs[k]
	if st == nil {
		st = &pairState{}
		s.pairs[k] = st
	}
	return st
}

func (s *Sim) genClaim(r *rand.Rand, now time.Time, brands []*brand, kind string, genuine, hasCode bool) (GeneratedClaim, bool) {
	if kind == KindIGMention {
		b := brands[r.IntN(len(brands))]
		u := s.users[r.IntN(len(s.users))]
		target := s.actMention(r, now, b, u, genuine)
		return s.emit(r, b, u, kind, target, b.igSince, "", genuine), true
	}
	// Pick brand, target and user: prefer fresh pairs, then any compatible
	// pair, then relax the code and finally the truth.
	type choice struct {
		b      *brand
		target string
		since  time.Time
		u      *person
	}
	pick := func(fresh bool, genuine, hasCode bool, tries int) (choice, bool) {
		for t := 0; t < tries; t++ {
			b := brands[r.IntN(len(brands))]
			ids, sinces := targetsOf(b, kind)
			if len(ids) == 0 {
				continue
			}
			j := r.IntN(len(ids))
			u := s.users[r.IntN(len(s.users))]
			st := s.pairs[pairKey{kind, u, ids[j]}]
			if fresh && st != nil {
				continue
			}
			if compatible(kind, st, genuine, hasCode) {
				return choice{b, ids[j], sinces[j], u}, true
			}
		}
		return choice{}, false
	}
	ch, ok := pick(true, genuine, hasCode, 30)
	if !ok {
		ch, ok = pick(false, genuine, hasCode, 100)
	}
	if !ok && !genuine && (kind == KindIGComment || kind == KindFBComment) {
		hasCode = true
		ch, ok = pick(false, genuine, hasCode, 100)
	}
	if !ok {
		genuine = !genuine
		ch, ok = pick(false, genuine, hasCode, 200)
	}
	if !ok {
		return GeneratedClaim{}, false
	}
	code := ""
	if hasCode {
		code = s.newCode(r)
	}
	st := s.pair(kind, ch.u, ch.target)
	if genuine {
		st.genuine = true
	} else {
		st.fraud = true
	}
	defer func() {
		if !genuine && code == "" {
			st.uncoded = true
		}
	}()
	switch kind {
	case KindIGComment:
		s.actIGComment(r, now, ch.b, ch.u, ch.target, ch.since, code, genuine, st)
	case KindFBComment:
		s.actFBComment(r, now, ch.b, ch.u, ch.target, ch.since, code, genuine, st)
	case KindFBReaction:
		s.actReaction(r, now, ch.b, ch.u, ch.target, genuine, st)
	case KindIGTag:
		s.actTag(r, now, ch.b, ch.u, ch.since, genuine, st)
	}
	return s.emit(r, ch.b, ch.u, kind, ch.target, ch.since, code, genuine), true
}

func (s *Sim) newCode(r *rand.Rand) string {
	for {
		c := "SP-" + randString(r, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6)
		if !s.codes[c] {
			s.codes[c] = true
			return c
		}
	}
}

func (s *Sim) emit(r *rand.Rand, b *brand, u *person, kind, target string, since time.Time, code string, genuine bool) GeneratedClaim {
	s.keySeq[b.tenant]++
	key := fmt.Sprintf("c-%06d", s.keySeq[b.tenant])
	handle := u.fbName
	if strings.HasPrefix(kind, "ig_") {
		handle = u.username
		if r.IntN(20) == 0 { // ~5%: the user typed their handle in another case
			if r.IntN(2) == 0 {
				handle = strings.ToUpper(handle)
			} else {
				handle = strings.ToUpper(handle[:1]) + handle[1:]
			}
			if handle == u.username {
				handle = strings.ToUpper(handle)
			}
		}
	}
	line, _ := json.Marshal(claimLine{
		Tenant: b.tenant, Key: key, User: u.ref, Handle: handle, Kind: kind, Target: target,
		Code: code, Since: since.UTC().Format(time.RFC3339),
	})
	s.truth = append(s.truth, truthRec{Tenant: b.tenant, Key: key, Kind: kind, Genuine: genuine})
	s.truthMap[b.tenant+"/"+key] = genuine
	return GeneratedClaim{Line: line, Tenant: b.tenant, Key: key, Kind: kind, Genuine: genuine}
}

func recent(r *rand.Rand, now time.Time) time.Time {
	return now.Add(-time.Duration(r.IntN(61)) * time.Second)
}

func withCode(r *rand.Rand, code string) string {
	t := commentPhrases[r.IntN(len(commentPhrases))]
	if code == "" {
		return t
	}
	if r.IntN(2) == 0 {
		return t + " " + code
	}
	return code + " " + t
}

func (s *Sim) actIGComment(r *rand.Rand, now time.Time, b *brand, u *person, target string, since time.Time, code string, genuine bool, st *pairState) {
	m := s.objects[target].(*igMedia)
	if genuine {
		s.addIGComment(r, m, u, withCode(r, code), recent(r, now))
		st.acted = true
		return
	}
	variants := []string{"none", "before_since"}
	var others []*igMedia
	for _, o := range b.ownMedia {
		if o != m {
			if ost := s.pairs[pairKey{KindIGComment, u, o.id}]; ost == nil || !ost.fraud {
				others = append(others, o)
			}
		}
	}
	if len(others) > 0 {
		variants = append(variants, "other_target")
	}
	if code != "" && !st.uncoded {
		variants = append(variants, "no_code")
	}
	switch variants[r.IntN(len(variants))] {
	case "before_since":
		s.addIGComment(r, m, u, withCode(r, code), between(r, m.ts, since))
	case "other_target":
		o := others[r.IntN(len(others))]
		s.addIGComment(r, o, u, withCode(r, code), recent(r, now))
		s.pair(KindIGComment, u, o.id).acted = true
	case "no_code":
		s.addIGComment(r, m, u, withCode(r, ""), recent(r, now))
		st.acted = true
	}
}

func (s *Sim) actFBComment(r *rand.Rand, now time.Time, b *brand, u *person, target string, since time.Time, code string, genuine bool, st *pairState) {
	p := s.objects[target].(*post)
	if genuine {
		s.addFBComment(r, p, u, withCode(r, code), recent(r, now))
		st.acted = true
		return
	}
	variants := []string{"none", "none", "before_since"}
	if code != "" && !st.uncoded {
		variants = append(variants, "no_code", "no_code")
	}
	switch variants[r.IntN(len(variants))] {
	case "before_since":
		s.addFBComment(r, p, u, withCode(r, code), between(r, p.ts, since))
	case "no_code":
		s.addFBComment(r, p, u, withCode(r, ""), recent(r, now))
		st.acted = true
	}
}

func (s *Sim) actReaction(r *rand.Rand, now time.Time, b *brand, u *person, target string, genuine bool, st *pairState) {
	p := s.objects[target].(*post)
	if genuine {
		s.addReaction(r, p, u, recent(r, now))
		st.acted = true
		return
	}
	// Fraud: no reaction on the target; sometimes one on another post.
	if r.IntN(2) == 0 {
		for _, o := range b.posts {
			if o == p || o.reacted[u] {
				continue
			}
			if ost := s.pairs[pairKey{KindFBReaction, u, o.id}]; ost != nil && ost.fraud {
				continue
			}
			s.addReaction(r, o, u, recent(r, now))
			s.pair(KindFBReaction, u, o.id).acted = true
			break
		}
	}
}

func (s *Sim) actTag(r *rand.Rand, now time.Time, b *brand, u *person, since time.Time, genuine bool, st *pairState) {
	caption := captionPhrases[r.IntN(len(captionPhrases))]
	if genuine {
		s.addUserMedia(r, u, caption, recent(r, now), b)
		st.acted = true
		return
	}
	switch r.IntN(3) {
	case 1: // tagged the brand, but before the task was published
		s.addUserMedia(r, u, caption, between(r, since.Add(-7*24*time.Hour), since), b)
	case 2: // tagged another brand instead
		for _, o := range s.brands {
			if o == b {
				continue
			}
			if ost := s.pairs[pairKey{KindIGTag, u, o.igID}]; ost != nil && ost.fraud {
				continue
			}
			s.addUserMedia(r, u, caption, recent(r, now), o)
			s.pair(KindIGTag, u, o.igID).acted = true
			break
		}
	}
}

// actMention creates the media an ig_mention claim points at and returns its id.
func (s *Sim) actMention(r *rand.Rand, now time.Time, b *brand, u *person, genuine bool) string {
	phrase := captionPhrases[r.IntN(len(captionPhrases))]
	if genuine {
		return s.addUserMedia(r, u, fmt.Sprintf("%s with @%s ✨", phrase, b.igUsername), recent(r, now)).id
	}
	switch r.IntN(4) {
	case 0: // the user's media does not mention the brand (at most a near miss)
		caption := []string{
			phrase,
			fmt.Sprintf("%s with @%s_official", phrase, b.igUsername),
			fmt.Sprintf("%s #%s", phrase, b.igUsername),
		}[r.IntN(3)]
		return s.addUserMedia(r, u, caption, recent(r, now)).id
	case 1: // mentioned the brand, but before the task was published
		return s.addUserMedia(r, u, fmt.Sprintf("%s with @%s", phrase, b.igUsername), between(r, b.igSince.Add(-7*24*time.Hour), b.igSince)).id
	default: // somebody else's media, preferably one that mentions the brand
		var pool []*igMedia
		for _, m := range b.mentionMedia {
			if m.owner != u {
				pool = append(pool, m)
			}
		}
		if len(pool) > 0 {
			return pool[r.IntN(len(pool))].id
		}
		other := s.noise[r.IntN(len(s.noise))]
		return s.addUserMedia(r, other, fmt.Sprintf("%s with @%s", phrase, b.igUsername), recent(r, now)).id
	}
}

// MalformedLines returns n claim lines a strict parser must refuse, each for
// a different reason (reasons repeat, with different keys, when n exceeds
// their number). No line contains a newline.
func (s *Sim) MalformedLines(n int) []string {
	s.mu.Lock()
	tenant, media, post := "brand-01", "17900000000000001", "100000000000001_122000000000000001"
	if len(s.brands) > 0 {
		b := s.brands[0]
		tenant = b.tenant
		if len(b.ownMedia) > 0 {
			media = b.ownMedia[0].id
		}
		if len(b.posts) > 0 {
			post = b.posts[0].id
		}
	}
	s.mu.Unlock()
	// line builds a claim object with the given fields in order; a nil value
	// leaves the field out.
	line := func(key string, over ...kv) string {
		fields := omap{{"tenant", tenant}, {"key", key}, {"user", "u-1"}, {"handle", "maya.rivers42"}, {"kind", "ig_comment"}, {"target", media}}
		for _, o := range over {
			found := false
			for i := range fields {
				if fields[i].k == o.k {
					fields[i].v, found = o.v, true
				}
			}
			if !found {
				fields = append(fields, o)
			}
		}
		var keep omap
		for _, f := range fields {
			if f.v != nil {
				keep = append(keep, f)
			}
		}
		b, _ := json.Marshal(keep)
		return string(b)
	}
	reasons := []func(k string) string{
		func(k string) string { // invalid JSON: the object is cut short
			l := line(k)
			return l[:len(l)-1]
		},
		func(k string) string { return line(k, kv{"reward", 5}) },                                       // unknown field
		func(k string) string { return line(k, kv{"kind", "ig_story_view"}) },                           // unknown kind
		func(k string) string { return line(k, kv{"tenant", nil}) },                                     // missing tenant
		func(k string) string { return line(k, kv{"handle", nil}) },                                     // missing handle for ig_comment
		func(k string) string { return line(k, kv{"target", "instagram.com/p/Cx1"}) },                   // non-numeric target
		func(k string) string { return line(k, kv{"handle", strings.Repeat("a", 10*1024)}) },            // a 10 KB line
		func(k string) string { return line("", kv{"key", nil}, kv{"user", "u-" + k}) },                 // missing key
		func(k string) string { return line(k) + ` {"tenant":"` + tenant + `"}` },                       // trailing data
		func(k string) string { return fmt.Sprintf(`[%q,%q,"u-1","ig_comment",%q]`, tenant, k, media) }, // not an object
		func(k string) string { return line(k, kv{"since", "yesterday"}) },                              // since is not RFC 3339
		func(k string) string { return line(k, kv{"code", "no spaces allowed!"}) },                      // bad claim code
		func(k string) string { return line(k, kv{"user", nil}) },                                       // missing user
		func(k string) string { return line(k, kv{"target", ""}) },                                      // empty target
		func(k string) string { return line("", kv{"key", 12345}, kv{"user", "u-" + k}) },               // key of the wrong type
		func(k string) string { return line(k, kv{"tenant", "brand 01!"}) },                             // tenant with bad characters
		func(k string) string { return line(k, kv{"handle", strings.Repeat("h", 150)}) },                // handle too long
		func(k string) string { return line(k, kv{"kind", "fb_comment"}, kv{"target", post + "_x"}) },   // malformed post id
		func(k string) string { return "tenant=" + tenant + "&key=" + k + "&kind=ig_comment" },          // not JSON at all
		func(k string) string { // invalid UTF-8 in the handle
			return strings.Replace(line(k), `"maya.rivers42"`, "\"maya\xff\xfe\"", 1)
		},
	}
	// Successive calls go on through the list, so a demo asking for one
	// malformed line at a time shows every kind of mistake in turn.
	s.mu.Lock()
	first := s.malformedNext
	s.malformedNext += n
	s.mu.Unlock()
	out := make([]string, 0, n)
	for i := first; i < first+n; i++ {
		out = append(out, reasons[i%len(reasons)](fmt.Sprintf("bad-%06d", i+1)))
	}
	return out
}
