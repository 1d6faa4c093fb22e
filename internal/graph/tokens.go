package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/secret"
)

// TokenInfo is what /debug_token says about a token.
type TokenInfo struct {
	Valid               bool
	AppID               string
	Application         string
	Type                string // USER, PAGE, SYSTEM_USER, APP
	Scopes              []string
	ExpiresAt           time.Time // Meta's clock; zero: never
	DataAccessExpiresAt time.Time // zero: none
	IssuedAt            time.Time
	UserID              string // who granted it: the user Meta's deauthorization callback names
	ProfileID           string // a Page token's Page
	// The reason Meta gives when it is not valid.
	ErrorCode    int
	ErrorSubcode int
	ErrorMessage string
}

// AppSession is a session on the app access token "<app id>|<app secret>":
// the token /debug_token is asked with. Its calls count in the app's own
// rate limit, so callers budget them through the app token's limiter.
func (c *Client) AppSession(ctx context.Context) *Session {
	return c.Session(ctx, secret.New(c.cfg.AppID+"|"+c.cfg.AppSecret.Reveal()))
}

// DebugToken asks /debug_token about input (one call on the session's
// token, which should be the app token). The input token travels in the
// query, like every token; errors never carry it.
func (s *Session) DebugToken(input secret.Value) (TokenInfo, Usage, error) {
	resp, err := s.Get("/debug_token", map[string]string{"input_token": input.Reveal()})
	if err != nil {
		return TokenInfo{}, resp.Usage, err
	}
	var body struct {
		Data *struct {
			IsValid             bool     `json:"is_valid"`
			AppID               string   `json:"app_id"`
			Application         string   `json:"application"`
			Type                string   `json:"type"`
			Scopes              []string `json:"scopes"`
			ExpiresAt           int64    `json:"expires_at"`
			DataAccessExpiresAt int64    `json:"data_access_expires_at"`
			IssuedAt            int64    `json:"issued_at"`
			UserID              string   `json:"user_id"`
			ProfileID           string   `json:"profile_id"`
			Error               *struct {
				Code    int    `json:"code"`
				Subcode int    `json:"subcode"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"data"`
	}
	if err := decode(resp.Result, &body); err != nil || body.Data == nil {
		return TokenInfo{}, resp.Usage, &Error{Class: Transient, Op: "GET /debug_token", Message: "unexpected response shape", Usage: resp.Usage}
	}
	d := body.Data
	info := TokenInfo{
		Valid: d.IsValid, AppID: d.AppID, Application: d.Application, Type: d.Type, Scopes: d.Scopes,
		ExpiresAt: unixTime(d.ExpiresAt), DataAccessExpiresAt: unixTime(d.DataAccessExpiresAt), IssuedAt: unixTime(d.IssuedAt),
		UserID: d.UserID, ProfileID: d.ProfileID,
	}
	if d.Error != nil {
		info.ErrorCode, info.ErrorSubcode, info.ErrorMessage = d.Error.Code, d.Error.Subcode, d.Error.Message
	}
	if info.Scopes == nil {
		info.Scopes = []string{}
	}
	return info, resp.Usage, nil
}

func unixTime(sec int64) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// ExchangeToken trades a short-lived user token for a long-lived one
// (POST /oauth/access_token, grant_type fb_exchange_token, through
// huandu's App.ExchangeToken). It needs the app secret. Neither token nor
// the secret appears in its errors.
func (c *Client) ExchangeToken(ctx context.Context, short secret.Value) (secret.Value, time.Duration, error) {
	const op = "POST /oauth/access_token"
	if c.cfg.AppSecret.Empty() {
		return secret.Value{}, 0, &Error{Class: Permanent, Op: op, Message: "no app secret configured: a token exchange needs it"}
	}
	app := facebook.New(c.cfg.AppID, c.cfg.AppSecret.Reveal())
	s := app.Session("")
	s.HttpClient = c.http
	s.BaseURL = c.cfg.BaseURL
	s.Version = c.cfg.Version
	app.SetSession(s.WithContext(ctx))
	long, expires, err := app.ExchangeToken(short.Reveal())
	if err != nil {
		e, _ := classify(op, err, Usage{}).(*Error)
		if e.Code == 1 || e.Code == 101 {
			// "Error validating client secret": our app's configuration,
			// not Meta hiccuping.
			e.Class = Permanent
		}
		return secret.Value{}, 0, e
	}
	if long == "" {
		return secret.Value{}, 0, &Error{Class: Transient, Op: op, Message: "answer without an access_token"}
	}
	return secret.New(long), time.Duration(expires) * time.Second, nil
}

// metaClock remembers the Date header of the last answer: Meta's clock,
// which runs apart from ours in accelerated runs against metasim.
type metaClock struct {
	mu   sync.Mutex
	date time.Time // Meta's time at seen
	seen time.Time // our time then
}

func (m *metaClock) observe(h http.Header) {
	d, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	m.mu.Lock()
	m.date, m.seen = d.UTC(), time.Now()
	m.mu.Unlock()
}

// now is Meta's time now, from the last Date header and the time passed
// since (at our pace: close enough for days-long expiry windows); ok is
// false before any answer.
func (m *metaClock) now() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.date.IsZero() {
		return time.Time{}, false
	}
	return m.date.Add(time.Since(m.seen)), true
}

// clockTransport feeds a session's metaClock from every answer.
type clockTransport struct {
	next  http.RoundTripper
	clock *metaClock
}

func (t clockTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		t.clock.observe(resp.Header)
	}
	return resp, err
}

// MetaNow is Meta's time now as its answers' Date headers tell it, for
// comparing with times Meta gives (a token's expires_at). Before the
// session's first answer, it is our own clock.
func (s *Session) MetaNow() time.Time {
	if s.clock != nil {
		if t, ok := s.clock.now(); ok {
			return t
		}
	}
	return time.Now().UTC()
}

// ParseSignedRequest checks a signed_request, as Meta posts it to the
// deauthorization callback, against the app secret and returns the user
// it names.
func (c *Client) ParseSignedRequest(signed string) (userID string, err error) {
	if c.cfg.AppSecret.Empty() {
		return "", errors.New("signed request: no app secret configured to check it")
	}
	res, err := c.app.ParseSignedRequest(signed)
	if err != nil {
		return "", fmt.Errorf("signed request: %w", err)
	}
	if err := res.DecodeField("user_id", &userID); err != nil || userID == "" {
		return "", errors.New("signed request: no user_id")
	}
	return userID, nil
}
