package metasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Config describes the simulated world. See the package comment for how zero
// and negative numbers are read.
type Config struct {
	Seed           int64            // world and claim generation are deterministic for a seed (default 1)
	Brands         int              // brands (= tenants) in the world, default 3
	Premium        int              // how many of them (the last ones) are premium with their own token, default 1
	Users          int              // claimant users, default 2000
	MediaPerBrand  int              // Instagram media per brand, default 5
	PostsPerBrand  int              // Facebook Page posts per brand, default 3
	NoiseComments  int              // pre-existing comments per media/post by noise users: random 0..N, default 120
	PlatformBudget Budget           // default {Calls:200, Window: time.Hour}
	TenantBudget   Budget           // default {Calls:200, Window: time.Hour}, for premium tenants' own tokens
	Speed          float64          // time acceleration of the sim clock, default 1
	AppID          string           // default "100000000000001"
	AppSecret      string           // when set, appsecret_proof is required on every Graph call
	Version        string           // default "v21.0" (any /vNN.N/ is accepted; this one is reported)
	Now            func() time.Time // wall clock, default time.Now

	// DeauthorizeURL is the app's Deauthorize Callback URL: Deauthorize
	// POSTs Meta's signed_request there. Empty: Deauthorize only revokes.
	DeauthorizeURL string

	// NoPlatformAccess lists tenants that did not grant the platform's
	// business access: the platform token gets permission errors on their
	// accounts. Change it at run time with SetPlatformAccess.
	NoPlatformAccess []string
}

// Budget is a token's call budget per rolling window (simulated time).
type Budget struct {
	Calls  int
	Window time.Duration
}

type budgetJSON struct {
	Calls  int    `json:"calls"`
	Window string `json:"window"`
}

// MarshalJSON writes {"calls":200,"window":"1h"}.
func (b Budget) MarshalJSON() ([]byte, error) {
	return json.Marshal(budgetJSON{Calls: b.Calls, Window: formatWindow(b.Window)})
}

// UnmarshalJSON reads {"calls":200,"window":"1h"}.
func (b *Budget) UnmarshalJSON(data []byte) error {
	var j budgetJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.Window)
	if err != nil {
		return fmt.Errorf("budget window: %w", err)
	}
	b.Calls, b.Window = j.Calls, d
	return nil
}

func formatWindow(d time.Duration) string {
	switch {
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d > 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// Faults are injected into Graph calls (not side endpoints).
type Faults struct {
	Latency   time.Duration // wall time waited before answering; respects the request context
	ErrorRate float64       // share of Graph calls answered 500/503 with a transient code 2 error
	// SpikeRate is the share of Graph calls that wait SpikeLatency (wall
	// time, on top of Latency) before answering: latency spikes, e.g.
	// beyond a client's timeout. Like Latency, a spike ends early when the
	// client goes away (logged as OutcomeCanceled).
	SpikeRate    float64
	SpikeLatency time.Duration
}

// TokenState is what SetTokenState puts a token into.
type TokenState int

const (
	TokenValid   TokenState = iota // works (an expiry in the past is moved to the default again)
	TokenExpired                   // 190 subcode 463: "Session has expired on ..."
	TokenInvalid                   // 190 subcode 460: the user changed their password
	TokenRevoked                   // 190 subcode 458: the user removed the app (see also Deauthorize)
)

// Request-log outcomes.
const (
	OutcomeOK           = "ok"
	OutcomeThrottled    = "throttled"
	OutcomeTokenInvalid = "token_invalid"
	OutcomePermission   = "permission"
	OutcomeNotFound     = "not_found"
	OutcomeBadRequest   = "bad_request"
	OutcomeFault        = "fault"
	OutcomeCanceled     = "canceled" // the client went away during injected latency
)

// Request is one Graph call in the request log.
type Request struct {
	Time    time.Time `json:"time"`     // simulated time the call arrived
	TokenID string    `json:"token_id"` // "platform", "tok-brand-03", "tok-brand-02-1", "app" (app access token), "" when unknown; /oauth/access_token: the input token
	Path    string    `json:"path"`     // as requested, without query string
	Status  int       `json:"status"`   // HTTP status
	Code    int       `json:"code"`     // Graph error code, 0 on success
	Outcome string    `json:"outcome"`
}

// World is the public description of the simulated world.
type World struct {
	AppID     string    `json:"app_id"`
	AppSecret string    `json:"app_secret,omitempty"`
	Version   string    `json:"version"`
	Start     time.Time `json:"start"` // simulated time the world was created
	Speed     float64   `json:"speed"`
	Brands    []Brand   `json:"brands"`
	Tokens    []Token   `json:"tokens"`
	Users     []User    `json:"users"` // claimant users (noise users are not listed)
}

// Brand is one tenant and its accounts.
type Brand struct {
	Tenant         string   `json:"tenant"` // "brand-01", ...
	Tier           string   `json:"tier"`   // "premium" or "standard"
	Name           string   `json:"name"`
	IGUserID       string   `json:"ig_user_id"`
	IGUsername     string   `json:"ig_username"`
	PageID         string   `json:"page_id"`
	PageName       string   `json:"page_name"`
	MediaIDs       []string `json:"media_ids"`
	PostIDs        []string `json:"post_ids"` // "<page_id>_<post_id>"
	TokenID        string   `json:"token_id"` // "tok-<tenant>" for premium brands, "" otherwise
	PlatformAccess bool     `json:"platform_access"`
	// Since maps every target (media ids, post ids, and the IG user id for
	// tags, mentions and follows) to when its task was published: the `since`
	// of claims on it.
	Since map[string]time.Time `json:"since"`
}

// Token is an access token of the world.
type Token struct {
	ID    string `json:"id"`    // "platform", "tok-<tenant>", or "tok-<tenant>-<n>" (MintToken, token exchange)
	Value string `json:"value"` // the secret
	// Type is "SYSTEM_USER" (platform), "PAGE" (a Page token, which also
	// reads the linked IG account) or "USER" (a tenant's user token).
	Type              string   `json:"type"`
	Tenant            string   `json:"tenant,omitempty"` // the brand a tenant token reads
	AppID             string   `json:"app_id"`           // the app it was issued for (Config.AppID unless minted for another app)
	Accounts          []string `json:"accounts"`
	Budget            Budget   `json:"budget"`
	BUC               bool     `json:"buc"`        // Business Use Case rate limits (X-Business-Use-Case-Usage)
	UserID            string   `json:"user_id"`    // /me id: the system user, the Page, or the user of a USER token
	Name              string   `json:"name"`       // /me name
	GrantedBy         string   `json:"granted_by"` // the Meta user who granted it: debug_token's user_id
	Scopes            []string `json:"scopes"`
	IssuedAt          int64    `json:"issued_at"`              // unix seconds (simulated)
	Expires           int64    `json:"expires_at"`             // unix seconds (simulated), 0 = never
	DataAccessExpires int64    `json:"data_access_expires_at"` // unix seconds (simulated), 0 = none
	ExchangedFrom     string   `json:"exchanged_from,omitempty"`
	State             string   `json:"state"`       // valid, expired, invalid, revoked
	Floor             int      `json:"usage_floor"` // usage by others, in percent
}

// User is a claimant end user.
type User struct {
	Ref        string `json:"ref"` // "u-<n>", the claim's user field
	IGUsername string `json:"ig_username"`
	IGUserID   string `json:"ig_user_id"` // IG-scoped id (from.id on comments)
	FBUserID   string `json:"fb_user_id"` // app-scoped Facebook id
	FBName     string `json:"fb_name"`    // display name
}

// Sim is a running simulated Graph API. All methods are safe for concurrent use.
type Sim struct {
	cfg       Config
	wallStart time.Time
	start     time.Time // sim time at creation (= wallStart)

	mu            sync.Mutex
	malformedNext int        // MalformedLines' position in its list of mistakes
	crng          *rand.Rand // claims and the actions they cause
	frng          *rand.Rand // faults and trace ids
	faults        Faults

	appName      string
	otherAppID   string // the app that MintOptions.App "other" tokens belong to
	otherAppName string
	sysUser      *sysUserNode

	brands        []*brand
	brandByTenant map[string]*brand
	tokens        []*tokenRec
	tokenByValue  map[string]*tokenRec
	tokenByID     map[string]*tokenRec
	appTok        *tokenRec
	trng          *rand.Rand     // lifetimes of minted tokens (values come from crypto/rand)
	tokenSeq      map[string]int // per tenant: the last n of "tok-<tenant>-<n>"

	users     []*person // claimants
	noise     []*person
	objects   map[string]any
	usedIDs   map[string]bool
	usedNames map[string]bool

	pairs    map[pairKey]*pairState
	codes    map[string]bool
	keySeq   map[string]int
	truth    []truthRec
	truthMap map[string]bool

	log []Request

	wh     *webhooks // the active webhook subscription, nil when none
	whLast *webhooks // the latest subscription, active or stopped (stats)
	whSubs int       // subscriptions made, for their random streams
}

// maxLog bounds the request log; when it is exceeded the oldest half is dropped.
const maxLog = 1_000_000

// New builds the world for cfg. It never fails: out-of-range numbers are
// replaced by defaults.
func New(cfg Config) *Sim {
	cfg = withDefaults(cfg)
	wall := cfg.Now()
	s := &Sim{
		cfg:           cfg,
		wallStart:     wall,
		start:         wall,
		crng:          rand.New(rand.NewPCG(uint64(cfg.Seed), 0x636c61696d73)), // "claims"
		frng:          rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6661756c7473)), // "faults"
		trng:          rand.New(rand.NewPCG(uint64(cfg.Seed), 0x746f6b656e73)), // "tokens"
		tokenSeq:      map[string]int{},
		brandByTenant: map[string]*brand{},
		tokenByValue:  map[string]*tokenRec{},
		tokenByID:     map[string]*tokenRec{},
		objects:       map[string]any{},
		usedIDs:       map[string]bool{},
		usedNames:     map[string]bool{},
		pairs:         map[pairKey]*pairState{},
		codes:         map[string]bool{},
		keySeq:        map[string]int{},
		truthMap:      map[string]bool{},
	}
	s.build()
	return s
}

func withDefaults(c Config) Config {
	num := func(v *int, def int) {
		if *v == 0 {
			*v = def
		} else if *v < 0 {
			*v = 0
		}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	num(&c.Brands, 3)
	num(&c.Premium, 1)
	if c.Premium > c.Brands {
		c.Premium = c.Brands
	}
	num(&c.Users, 2000)
	num(&c.MediaPerBrand, 5)
	num(&c.PostsPerBrand, 3)
	num(&c.NoiseComments, 120)
	defBudget := func(b *Budget) {
		if b.Calls <= 0 {
			b.Calls = 200
		}
		if b.Window <= 0 {
			b.Window = time.Hour
		}
	}
	defBudget(&c.PlatformBudget)
	defBudget(&c.TenantBudget)
	if c.Speed <= 0 {
		c.Speed = 1
	}
	if c.AppID == "" {
		c.AppID = "100000000000001"
	}
	if c.Version == "" {
		c.Version = "v21.0"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// now is the sim clock. Callers hold s.mu or accept a racy read of nothing:
// it reads only immutable fields.
func (s *Sim) now() time.Time {
	el := s.cfg.Now().Sub(s.wallStart)
	if s.cfg.Speed == 1 {
		return s.start.Add(el)
	}
	return s.start.Add(time.Duration(float64(el) * s.cfg.Speed))
}

// Now returns the current simulated time.
func (s *Sim) Now() time.Time { return s.now() }

// Config returns the configuration in effect (defaults filled in).
func (s *Sim) Config() Config { return s.cfg }

// Handler serves the Graph paths (/vNN.N/...) and the side endpoints (/_sim/...).
func (s *Sim) Handler() http.Handler {
	side := s.sideMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Meta's clock on every answer; serveGraph sets it again when it
		// answers, after any injected latency.
		w.Header().Set("Date", httpDate(s.now()))
		if r.URL.Path == "/_sim" || strings.HasPrefix(r.URL.Path, "/_sim/") {
			side.ServeHTTP(w, r)
			return
		}
		s.serveGraph(w, r)
	})
}

// httpDate formats t for an HTTP Date header.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// World returns a snapshot of the world, token values included.
func (s *Sim) World() World {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	w := World{
		AppID:     s.cfg.AppID,
		AppSecret: s.cfg.AppSecret,
		Version:   s.cfg.Version,
		Start:     s.start,
		Speed:     s.cfg.Speed,
	}
	for _, b := range s.brands {
		pb := Brand{
			Tenant: b.tenant, Tier: b.tier, Name: b.name,
			IGUserID: b.igID, IGUsername: b.igUsername, PageID: b.pageID, PageName: b.name,
			TokenID: b.tokenID, PlatformAccess: b.platformAccess,
			MediaIDs: []string{}, PostIDs: []string{},
			Since: map[string]time.Time{b.igID: b.igSince},
		}
		for _, m := range b.ownMedia {
			pb.MediaIDs = append(pb.MediaIDs, m.id)
			pb.Since[m.id] = m.since
		}
		for _, p := range b.posts {
			pb.PostIDs = append(pb.PostIDs, p.id)
			pb.Since[p.id] = p.since
		}
		w.Brands = append(w.Brands, pb)
	}
	for _, t := range s.tokens {
		w.Tokens = append(w.Tokens, s.publicToken(t, now))
	}
	for _, u := range s.users {
		w.Users = append(w.Users, User{Ref: u.ref, IGUsername: u.username, IGUserID: u.igID, FBUserID: u.fbID, FBName: u.fbName})
	}
	return w
}

func (s *Sim) publicToken(t *tokenRec, now time.Time) Token {
	pt := Token{ID: t.id, Value: t.value, Type: t.typ, AppID: t.appID, Accounts: s.readableAccounts(t), Budget: t.budget,
		BUC: t.buc, UserID: t.principalID, Name: t.principalName, GrantedBy: t.userID,
		Scopes: append([]string{}, t.tokenScopes()...), IssuedAt: unixOrZero(t.issuedAt),
		Expires: unixOrZero(t.expiresAt), DataAccessExpires: unixOrZero(t.dataAccessExp),
		ExchangedFrom: t.from, Floor: t.floor, State: "valid"}
	if t.brand != nil {
		pt.Tenant = t.brand.tenant
	}
	switch {
	case t.revoked:
		pt.State = "revoked"
	case t.invalid:
		pt.State = "invalid"
	case t.expired(now):
		pt.State = "expired"
	}
	return pt
}

// Requests returns a copy of the request log, in arrival order.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests empties the request log.
func (s *Sim) ResetRequests() {
	s.mu.Lock()
	s.log = nil
	s.mu.Unlock()
}

// SetFaults sets the injected latency and error rate.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

var errUnknownToken = errors.New("metasim: unknown token id")

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// SetTokenState makes a token valid, expired (190/463), invalid (190/460)
// or revoked (190/458). The states exclude each other: setting one clears
// the others. Revoking here sends no deauthorize callback (see Deauthorize).
func (s *Sim) SetTokenState(tokenID string, st TokenState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokenByID[tokenID]
	if t == nil {
		return fmt.Errorf("%w: %q", errUnknownToken, tokenID)
	}
	now := s.now()
	switch st {
	case TokenValid:
		t.invalid, t.revoked = false, false
		t.expiresAt = t.defaultExpiry
		if t.expired(now) { // the natural expiry has passed: renew
			t.expiresAt = time.Time{}
			if t.lifetime > 0 {
				t.expiresAt = now.Add(t.lifetime)
			}
		}
	case TokenExpired:
		t.invalid, t.revoked = false, false
		t.expiresAt = now.Truncate(time.Second)
	case TokenInvalid:
		t.invalid, t.revoked = true, false
	case TokenRevoked:
		t.invalid, t.revoked = false, true
	default:
		return fmt.Errorf("metasim: unknown token state %d", st)
	}
	return nil
}

// SetUsageFloor says another app or user spends percent of this token's
// budget: usage headers report at least that and the calls left shrink to
// (100-percent)% of the budget.
func (s *Sim) SetUsageFloor(tokenID string, percent int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokenByID[tokenID]
	if t == nil {
		return fmt.Errorf("%w: %q", errUnknownToken, tokenID)
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("metasim: usage floor %d%% out of 0..100", percent)
	}
	t.floor = percent
	return nil
}

// Throttle blocks the token from now for regain (simulated time); calls
// during the block are refused with the token's throttle error and each one
// extends the block (see tokenRec.admit). A non-positive regain lifts a
// manual block.
func (s *Sim) Throttle(tokenID string, regain time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokenByID[tokenID]
	if t == nil {
		return fmt.Errorf("%w: %q", errUnknownToken, tokenID)
	}
	if regain <= 0 {
		t.manualUntil = time.Time{}
		return nil
	}
	t.manualUntil = s.now().Add(regain)
	return nil
}

// SetPlatformAccess grants or revokes the platform token's access to a
// tenant's accounts (the tenant's business access grant).
func (s *Sim) SetPlatformAccess(tenant string, granted bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.brandByTenant[tenant]
	if b == nil {
		return fmt.Errorf("metasim: unknown tenant %q", tenant)
	}
	b.platformAccess = granted
	return nil
}

// DeleteComment removes an Instagram or Facebook comment: it disappears
// from every list and its id answers "does not exist". A Page comment's
// removal is a feed webhook (verb "remove"); Instagram sends none.
func (s *Sim) DeleteComment(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c := s.objects[id].(type) {
	case *igComment:
		c.media.comments = removeItem(c.media.comments, c)
	case *fbComment:
		c.post.comments = removeItem(c.post.comments, c)
		s.whFBComment(c, "remove", s.now().Truncate(time.Second))
	default:
		return fmt.Errorf("metasim: no comment %q", id)
	}
	delete(s.objects, id)
	return nil
}

// EditComment changes the text of an Instagram or Facebook comment. A Page
// comment's edit is a feed webhook (verb "edited"); Instagram sends none.
func (s *Sim) EditComment(id, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c := s.objects[id].(type) {
	case *igComment:
		c.text = text
	case *fbComment:
		c.message = text
		s.whFBComment(c, "edited", s.now().Truncate(time.Second))
	default:
		return fmt.Errorf("metasim: no comment %q", id)
	}
	return nil
}

// AddIGComment adds a comment by the claimant user with reference userRef
// ("u-12") on any Instagram media, timestamped now (sim clock). It returns
// the comment id. Use it to build mentioned_comment cases or extra evidence.
// It does not change the ground truth of generated claims.
func (s *Sim) AddIGComment(mediaID, userRef, text string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.objects[mediaID].(*igMedia)
	if !ok {
		return "", fmt.Errorf("metasim: no media %q", mediaID)
	}
	u := s.userByRef(userRef)
	if u == nil {
		return "", fmt.Errorf("metasim: no user %q", userRef)
	}
	c := s.addIGComment(s.crng, m, u, text, s.now().Truncate(time.Second))
	return c.id, nil
}

func (s *Sim) userByRef(ref string) *person {
	var n int
	if _, err := fmt.Sscanf(ref, "u-%d", &n); err != nil || n < 1 || n > len(s.users) {
		return nil
	}
	return s.users[n-1]
}
