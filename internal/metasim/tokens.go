package metasim

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kinds of minted tokens (MintOptions.Kind).
const (
	MintUserShort = "user_short" // USER token from Facebook Login: expires 1-2 h (sim) after issue
	MintUserLong  = "user_long"  // long-lived USER token: expires 60 days (sim) after issue
	MintPage      = "page"       // PAGE token of the brand's Page: never expires
)

// Apps a token can be minted for (MintOptions.App).
const (
	MintAppOurs  = "ours"  // Config.AppID
	MintAppOther = "other" // another app: debug_token shows its app_id; our app can neither use nor exchange it
)

const (
	longLivedLifetime  = 60 * 24 * time.Hour // a long-lived user token, as Meta's fb_exchange_token gives
	dataAccessLifetime = 90 * 24 * time.Hour // Meta's data access expiry after the user's grant
)

// MintOptions describe a token for a tenant's brand, as the tenant would
// get it by connecting their Meta account to the app (see MintToken).
type MintOptions struct {
	Tenant string // required: "brand-02", ...
	Kind   string // MintUserShort (default), MintUserLong or MintPage
	App    string // MintAppOurs (default) or MintAppOther
	// Scopes replace the granted permissions when not nil (an empty, non-nil
	// list grants none). Default: all the app asks for, as debug_token shows
	// them. Graph calls do not check them: they are for debug_token.
	Scopes []string
	// ExpiresIn (sim time from now) replaces the kind's lifetime when not
	// zero; a negative value mints an already expired token.
	ExpiresIn time.Duration
	// DataAccessExpiresIn (sim time from now), default 90 days; reported by
	// debug_token, not enforced.
	DataAccessExpiresIn time.Duration
}

// MintToken creates a token for o.Tenant's brand and returns it, its value
// included. Like the premium "tok-<tenant>" token it reads exactly that
// brand's IG account and Page; it has its own call budget
// (Config.TenantBudget; BUC headers and limits only for a PAGE token), shows
// in World().Tokens and the request log as "tok-<tenant>-<n>", and
// SetTokenState, SetUsageFloor, Throttle and Deauthorize work on it.
func (s *Sim) MintToken(o MintOptions) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.brandByTenant[o.Tenant]
	if b == nil {
		return Token{}, fmt.Errorf("metasim: mint token: unknown tenant %q", o.Tenant)
	}
	appID := s.cfg.AppID
	switch o.App {
	case "", MintAppOurs:
	case MintAppOther:
		appID = s.otherAppID
	default:
		return Token{}, fmt.Errorf("metasim: mint token: app must be %q or %q, not %q", MintAppOurs, MintAppOther, o.App)
	}
	switch o.Kind {
	case "", MintUserShort, MintUserLong, MintPage:
	default:
		return Token{}, fmt.Errorf("metasim: mint token: kind must be %s, %s or %s, not %q", MintUserShort, MintUserLong, MintPage, o.Kind)
	}
	scopes, err := checkScopes(o.Scopes)
	if err != nil {
		return Token{}, fmt.Errorf("metasim: mint token: %w", err)
	}
	now := s.now()
	issued := now.Truncate(time.Second)
	t := &tokenRec{
		id: s.nextTokenID(b), value: s.newTokenValue(), brand: b, appID: appID,
		budget: s.cfg.TenantBudget, userID: b.adminID, scopes: scopes, issuedAt: issued,
	}
	t.grant = t.id
	admin := s.objects[b.adminID].(*sysUserNode)
	switch o.Kind {
	case "", MintUserShort: // Facebook Login's short-lived token
		t.typ, t.principalID, t.principalName = "USER", admin.id, admin.name
		t.lifetime = time.Hour + time.Duration(s.trng.Int64N(int64(time.Hour))).Truncate(time.Second)
	case MintUserLong:
		t.typ, t.principalID, t.principalName = "USER", admin.id, admin.name
		t.lifetime = longLivedLifetime
	case MintPage: // a Page token from a long-lived user token: never expires
		t.typ, t.principalID, t.principalName = "PAGE", b.pageID, b.name
		t.buc = true
	}
	if o.ExpiresIn != 0 {
		t.defaultExpiry = issued.Add(o.ExpiresIn)
		if o.ExpiresIn > 0 { // a renewal (SetTokenState valid) lasts as long
			t.lifetime = o.ExpiresIn
		}
	} else if t.lifetime > 0 {
		t.defaultExpiry = issued.Add(t.lifetime)
	}
	t.expiresAt = t.defaultExpiry
	da := o.DataAccessExpiresIn
	if da == 0 {
		da = dataAccessLifetime
	}
	t.dataAccessExp = issued.Add(da)
	s.addToken(t)
	return s.publicToken(t, now), nil
}

// checkScopes validates permission names and drops repeats; nil stays nil
// (the default scopes).
func checkScopes(in []string) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	out := []string{}
	for _, sc := range in {
		if sc == "" || strings.Trim(sc, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return nil, fmt.Errorf("scope %.60q is not a permission name", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// nextTokenID is "tok-<tenant>-<n>" with n counting up per tenant.
func (s *Sim) nextTokenID(b *brand) string {
	for {
		s.tokenSeq[b.tenant]++
		id := fmt.Sprintf("tok-%s-%d", b.tenant, s.tokenSeq[b.tenant])
		if s.tokenByID[id] == nil {
			return id
		}
	}
}

// newTokenValue is an unguessable token value (crypto/rand), distinct from
// every other token's: unlike the world's tokens, minted ones must not be
// derivable from the seed.
func (s *Sim) newTokenValue() string {
	for {
		v := "EAAB" + secretString(60)
		if s.lookupToken(v) == nil {
			return v
		}
	}
}

// secretString draws n characters of alnum from crypto/rand, without
// modulo bias.
func secretString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	limit := byte(256 / len(alnum) * len(alnum))
	for len(out) < n {
		crand.Read(buf) // never fails (Go 1.24+)
		for _, c := range buf {
			if c < limit && len(out) < n {
				out = append(out, alnum[int(c)%len(alnum)])
			}
		}
	}
	return string(out)
}

// otherApp is the app that "other" tokens are issued for: an id distinct
// from ours.
func otherApp(ours string) (id, name string) {
	id = "100000000000002"
	if id == ours {
		id = "100000000000003"
	}
	return id, "Partner Scheduling Tool"
}

// appNameOf is the application name debug_token shows for an app id.
func (s *Sim) appNameOf(appID string) string {
	if appID == s.otherAppID {
		return s.otherAppName
	}
	return s.appName
}

// isOAuthPath reports whether path is /oauth/access_token, with or without
// a version prefix.
func isOAuthPath(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 3 && versionRe.MatchString(segs[0]) {
		segs = segs[1:]
	}
	return len(segs) == 2 && segs[0] == "oauth" && segs[1] == "access_token"
}

// oauthAnswer answers /oauth/access_token?grant_type=fb_exchange_token
// (query or POSTed form, as huandu's App.ExchangeToken sends it): a new
// long-lived USER token for a user token of our app. The app authenticates
// with client_id and client_secret (checked when Config.AppSecret is set),
// so no access token or appsecret_proof is needed; no budget is spent and
// no injected error applies. The input token stays as it was. Called with
// s.mu held.
func (s *Sim) oauthAnswer(r *http.Request, q url.Values, now time.Time, a answer) answer {
	a.tok = s.lookupToken(q.Get("fb_exchange_token")) // for the request log
	switch r.Method {
	case http.MethodGet, http.MethodPost: // not HEAD: it would mint a token nobody sees
	default:
		a.err = errMethod(strings.ToLower(r.Method), "oauth")
		return a
	}
	for _, p := range []string{"client_id", "client_secret", "grant_type", "fb_exchange_token"} {
		if q.Get(p) == "" {
			a.err = errMissingParam(p)
			return a
		}
	}
	if gt := q.Get("grant_type"); gt != "fb_exchange_token" {
		a.err = errGrantType(gt)
		return a
	}
	secretOK := s.cfg.AppSecret == "" || hmac.Equal([]byte(q.Get("client_secret")), []byte(s.cfg.AppSecret))
	if q.Get("client_id") != s.cfg.AppID || !secretOK {
		a.err = errClientSecret()
		return a
	}
	t := a.tok
	switch {
	case t == nil:
		a.err = errCannotParseToken()
	case t.appID != s.cfg.AppID:
		a.err = errExchangeOtherApp(s.cfg.AppID)
	case t.typ != "USER":
		a.err = errNotUserToken()
	default:
		a.err = s.tokenStateError(t, now)
	}
	if a.err != nil {
		return a
	}
	nt := s.exchange(t, now)
	a.body = omap{
		{"access_token", nt.value},
		{"token_type", "bearer"},
		{"expires_in", int64(nt.expiresAt.Sub(now) / time.Second)},
	}
	return a
}

// exchange makes a long-lived token of t's user, tenant and scopes. Its
// data access expiry stays t's: Meta counts it from the user's grant.
func (s *Sim) exchange(t *tokenRec, now time.Time) *tokenRec {
	issued := now.Truncate(time.Second)
	nt := &tokenRec{
		id: s.nextTokenID(t.brand), value: s.newTokenValue(), typ: "USER", brand: t.brand, appID: t.appID,
		budget: s.cfg.TenantBudget, principalID: t.principalID, principalName: t.principalName,
		userID: t.userID, scopes: slices.Clone(t.scopes), issuedAt: issued,
		lifetime: longLivedLifetime, dataAccessExp: t.dataAccessExp, grant: t.grant, from: t.id,
	}
	nt.defaultExpiry = issued.Add(longLivedLifetime)
	nt.expiresAt = nt.defaultExpiry
	s.addToken(nt)
	return nt
}

// deauthorizeClient POSTs deauthorize callbacks.
var deauthorizeClient = &http.Client{Timeout: 10 * time.Second}

// Deauthorize plays a user removing the app: the token and every token of
// the same login (the one it was exchanged from, those exchanged from it)
// are revoked (190/458), then, for a token of our app, Meta's signed_request
// is POSTed to Config.DeauthorizeURL (none without one; for a token of
// another app, that app would be told, not ours). The tokens stay revoked
// when the callback fails; the error says why it failed.
func (s *Sim) Deauthorize(tokenID string) error {
	return s.deauthorize(context.Background(), tokenID)
}

func (s *Sim) deauthorize(ctx context.Context, tokenID string) error {
	s.mu.Lock()
	t := s.tokenByID[tokenID]
	if t == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", errUnknownToken, tokenID)
	}
	for _, o := range s.tokens {
		if o.grant == t.grant {
			o.invalid, o.revoked = false, true
		}
	}
	target := s.cfg.DeauthorizeURL
	if t.appID != s.cfg.AppID {
		target = ""
	}
	body := url.Values{"signed_request": {signedRequest(s.cfg.AppSecret, t.userID, s.now())}}.Encode()
	s.mu.Unlock()
	if target == "" {
		return nil
	}
	if err := postDeauthorize(ctx, target, body); err != nil {
		return fmt.Errorf("metasim: token %s revoked, but the deauthorize callback failed: %w", tokenID, err)
	}
	return nil
}

func postDeauthorize(ctx context.Context, target, body string) error {
	where := redactURL(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", where, unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := deauthorizeClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s answered %d: %.200q", where, resp.StatusCode, answer)
	}
	return nil
}

// redactURL drops the query and user info of a callback URL for error
// messages: either may hold a secret of the receiver's.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the deauthorize URL"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// unwrapURLError drops *url.Error's wrapping, which repeats the full URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// signedRequest is Meta's signed_request: base64url (no padding) of the
// HMAC-SHA256 of the encoded payload keyed by the app secret, a dot, and the
// encoded payload {"algorithm":"HMAC-SHA256","issued_at":...,"user_id":...}.
func signedRequest(appSecret, userID string, now time.Time) string {
	payload, _ := json.Marshal(omap{{"algorithm", "HMAC-SHA256"}, {"issued_at", now.Unix()}, {"user_id", userID}})
	enc := base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(enc))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "." + enc
}
