package metasim

import (
	"sort"
	"time"
)

// person is a claimant (ref "u-<n>") or a noise user (ref "").
type person struct {
	ref      string
	igID     string
	username string
	fbID     string
	fbName   string
	media    []*igMedia // own media, newest first
}

type brand struct {
	idx            int
	tenant, tier   string
	name           string
	igID           string
	igUsername     string
	pageID         string
	adminID        string // the Facebook user who issued the brand's Page token
	tokenID        string
	platformAccess bool
	igSince        time.Time // when the brand's tag/mention/follow task was published
	followers      int
	fans           int

	ownMedia     []*igMedia // newest first
	tags         []*igMedia // media tagging the brand, newest first
	mentionMedia []*igMedia // others' media whose caption mentions the brand
	posts        []*post    // newest first
}

type igMedia struct {
	id        string
	brand     *brand  // set for the brand's own media
	owner     *person // set for a user's media
	caption   string
	ts        time.Time
	since     time.Time // brand media: when its comment task was published
	mediaType string
	shortcode string
	likes     int
	comments  []*igComment // newest first
	tagged    []*brand
}

type igComment struct {
	id    string
	media *igMedia
	by    *person
	text  string
	ts    time.Time
	likes int
}

type post struct {
	id       string
	brand    *brand
	message  string
	ts       time.Time
	since    time.Time
	comments []*fbComment // newest first
	reacts   []*reaction  // newest first
	reacted  map[*person]bool
}

type fbComment struct {
	id      string
	post    *post
	by      *person
	message string
	ts      time.Time
	likes   int
}

type reaction struct {
	by  *person
	typ string
	ts  time.Time
}

// Graph nodes that are not one of the pointer types above.
type igAccountNode struct{ b *brand }
type pageNode struct{ b *brand }
type sysUserNode struct{ id, name string }

// keyed items sort newest first, ties by id descending.
type keyed interface{ key() (int64, string) }

func (m *igMedia) key() (int64, string)   { return m.ts.Unix(), m.id }
func (c *igComment) key() (int64, string) { return c.ts.Unix(), c.id }
func (p *post) key() (int64, string)      { return p.ts.Unix(), p.id }
func (c *fbComment) key() (int64, string) { return c.ts.Unix(), c.id }
func (r *reaction) key() (int64, string)  { return r.ts.Unix(), r.by.fbID }

// newerThan reports whether key a sorts before key b.
func newerThan(ats int64, aid string, bts int64, bid string) bool {
	if ats != bts {
		return ats > bts
	}
	if len(aid) != len(bid) {
		return len(aid) > len(bid)
	}
	return aid > bid
}

func insertSorted[T keyed](list []T, x T) []T {
	xt, xi := x.key()
	i := sort.Search(len(list), func(i int) bool {
		t, id := list[i].key()
		return newerThan(xt, xi, t, id)
	})
	var zero T
	list = append(list, zero)
	copy(list[i+1:], list[i:])
	list[i] = x
	return list
}

func removeItem[T comparable](list []T, x T) []T {
	for i, e := range list {
		if e == x {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// tokenLifetime is how long a tenant's Page token lives (simulated time).
const tokenLifetime = 60 * 24 * time.Hour

type tokenRec struct {
	id, value, typ string
	brand          *brand // the tenant of a tenant token
	isApp          bool   // the app access token "app_id|app_secret"
	isPlatform     bool
	appID          string // the app it was issued for: ours, or another app's for MintOptions.App "other"
	budget         Budget
	buc            bool
	principalID    string // what /me is: the system user, the Page, or the user of a USER token
	principalName  string
	userID         string   // the Meta user who granted it: debug_token's user_id
	scopes         []string // nil: grantedScopes
	issuedAt       time.Time
	defaultExpiry  time.Time     // zero: never
	lifetime       time.Duration // how long SetTokenState(TokenValid) renews an expired token for; 0: never expires
	expiresAt      time.Time
	dataAccessExp  time.Time
	invalid        bool
	revoked        bool   // the user removed the app (190/458)
	grant          string // tokens of one login (a minted token and those exchanged from it) share it
	from           string // the token it was exchanged from

	floor       int
	manualUntil time.Time
	calls       []time.Time // sim times of calls in the current window, ascending
}

// tokenScopes are the permissions the token was granted.
func (t *tokenRec) tokenScopes() []string {
	if t.scopes == nil {
		return grantedScopes
	}
	return t.scopes
}

func (t *tokenRec) expired(now time.Time) bool {
	return !t.expiresAt.IsZero() && !now.Before(t.expiresAt)
}

func (t *tokenRec) prune(now time.Time) {
	cut := now.Add(-t.budget.Window)
	i := 0
	for i < len(t.calls) && !t.calls[i].After(cut) {
		i++
	}
	if i > 0 {
		t.calls = append(t.calls[:0], t.calls[i:]...)
	}
}

// capacity is how many calls the window admits once others' usage (the
// floor) is taken off.
func (t *tokenRec) capacity() int {
	return t.budget.Calls * (100 - t.floor) / 100
}

// admit records one call at now and reports whether it may be answered.
//
// Every call counts in the rolling window, refused ones included. A call is
// refused while the window already holds capacity() calls or a manual block
// (Throttle) is on. Because refused calls count too, calling during a block
// pushes the regain time out: usage drops below 100% only when enough calls
// have aged out of the window. A manual block is also extended by 1/120 of
// the window (30 s for a 1 h window) per call made during it, up to one
// window from now.
func (t *tokenRec) admit(now time.Time) bool {
	t.prune(now)
	manual := now.Before(t.manualUntil)
	full := len(t.calls) >= t.capacity()
	if manual {
		limit := now.Add(t.budget.Window)
		if t.manualUntil.After(limit) {
			limit = t.manualUntil
		}
		next := t.manualUntil.Add(t.budget.Window / 120)
		if next.After(limit) {
			next = limit
		}
		t.manualUntil = next
	}
	t.calls = append(t.calls, now)
	return !manual && !full
}

// blocked reports whether the next call would be refused.
func (t *tokenRec) blocked(now time.Time) bool {
	return now.Before(t.manualUntil) || len(t.calls) >= t.capacity()
}

// regainAt is when calls will be admitted again if no more calls are made;
// the zero time when they are admitted now.
func (t *tokenRec) regainAt(now time.Time) time.Time {
	var r time.Time
	if now.Before(t.manualUntil) {
		r = t.manualUntil
	}
	capa := t.capacity()
	n := len(t.calls)
	if n >= capa {
		var w time.Time
		if capa <= 0 {
			w = now.Add(t.budget.Window)
		} else {
			w = t.calls[n-capa].Add(t.budget.Window)
		}
		if w.After(r) {
			r = w
		}
	}
	return r
}

// usage is the whole percent of the budget used in the window, plus the
// floor; at least 100 while blocked.
func (t *tokenRec) usage(now time.Time) int {
	pct := len(t.calls)*100/t.budget.Calls + t.floor
	if pct < 100 && t.blocked(now) {
		pct = 100
	}
	return pct
}
