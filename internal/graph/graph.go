// Package graph talks to the Meta Graph API (or to metasim, our local stand-in)
// through github.com/huandu/facebook/v2, and classifies what goes wrong once,
// so that callers act on a class (retry, wait, fall back) and never on an
// error string.
package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/secret"
)

// Config points the client at a Graph API.
type Config struct {
	BaseURL   string       // e.g. https://graph.facebook.com/ or http://127.0.0.1:8088/ (trailing slash added if missing)
	Version   string       // e.g. v21.0
	AppID     string       // our Meta app
	AppSecret secret.Value // signs every call with appsecret_proof when set
	Timeout   time.Duration
	// Transport makes the HTTP requests; nil: http.DefaultTransport. Tests
	// wrap it to see or upset what the client sends and gets.
	Transport http.RoundTripper
}

// Client makes Graph API calls for any token; it is safe for concurrent use.
type Client struct {
	cfg  Config
	app  *facebook.App
	http *http.Client
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.BaseURL != "" && !strings.HasSuffix(cfg.BaseURL, "/") {
		cfg.BaseURL += "/"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	return &Client{
		cfg:  cfg,
		app:  facebook.New(cfg.AppID, cfg.AppSecret.Reveal()),
		http: &http.Client{Timeout: cfg.Timeout, Transport: checkedTransport{next: cfg.Transport}},
	}
}

// AppID is the Meta app the client calls as.
func (c *Client) AppID() string { return c.cfg.AppID }

// Session is a client bound to one token and one context.
type Session struct {
	fb    *facebook.Session
	base  *url.URL // the API's scheme and host: the only place paging.next may lead
	clock *metaClock
}

// Session binds the client to a token. The token is used only in requests.
func (c *Client) Session(ctx context.Context, token secret.Value) *Session {
	s := c.app.Session(token.Reveal())
	// A client per session, sharing the transport's connections, so the
	// session reads Meta's clock from its own answers.
	clock := &metaClock{}
	hc := *c.http
	hc.Transport = clockTransport{next: c.http.Transport, clock: clock}
	s.HttpClient = &hc
	s.BaseURL = c.cfg.BaseURL
	s.Version = c.cfg.Version
	if !c.cfg.AppSecret.Empty() {
		_ = s.EnableAppsecretProof(true) // fails only without an app, which New always sets
	}
	base := c.cfg.BaseURL
	if base == "" {
		base = "https://graph.facebook.com/" // huandu's default
	}
	u, _ := url.Parse(base) // a bad BaseURL fails every call anyway; follow then refuses every next
	return &Session{fb: s.WithContext(ctx), base: u, clock: clock}
}

// Response is one call's outcome: the decoded body and the usage Meta reported.
type Response struct {
	Result facebook.Result
	Usage  Usage
}

// Get makes one GET call: one permit of the token's budget.
func (s *Session) Get(path string, params map[string]string) (Response, error) {
	p := facebook.Params{}
	for k, v := range params {
		p[k] = v
	}
	res, err := s.fb.Get(path, p)
	return s.finish("GET "+path, res, err)
}

// follow fetches a paging.next URL (absolute, as Meta returns it). The URL
// carries the token; it never appears in errors.
func (s *Session) follow(what, next string) (Response, error) {
	u, err := url.Parse(next)
	if err != nil {
		return Response{}, &Error{Class: Permanent, Op: what, Message: "malformed paging.next URL"}
	}
	// The token goes only to the API's own host, whatever an answer names.
	if s.base == nil || u.Scheme != s.base.Scheme || u.Host != s.base.Host {
		return Response{}, &Error{Class: Permanent, Op: what, Message: "paging.next leads to another host than the API's"}
	}
	q := u.Query()
	if proof := s.fb.AppsecretProof(); proof != "" && q.Get("appsecret_proof") == "" {
		q.Set("appsecret_proof", proof)
	}
	if q.Get("access_token") == "" {
		q.Set("access_token", s.fb.AccessToken())
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return Response{}, &Error{Class: Permanent, Op: what, Message: "malformed paging.next URL"}
	}
	res, err := s.fb.Request(req)
	return s.finish(what, res, err)
}

func (s *Session) finish(op string, res facebook.Result, err error) (Response, error) {
	resp := Response{Result: res}
	if res != nil {
		resp.Usage = usageFrom(res.UsageInfo())
	}
	if err != nil {
		return resp, classify(op, err, resp.Usage)
	}
	// An "error" huandu could not read (a string code, a string instead of
	// an object) comes back as a success: it is not one.
	if _, ok := res["error"]; ok {
		return resp, &Error{Class: Transient, Op: op, Message: "unreadable Graph API error object", Usage: resp.Usage}
	}
	return resp, nil
}

// Pager reads a paged edge (comments, tags, reactions) one page, one call, at a time.
type Pager struct {
	s     *Session
	op    string
	path  string
	query map[string]string
	next  string
	done  bool
	Calls int   // calls made so far
	Usage Usage // usage reported by the last call
}

// Edge starts reading GET /{object}/{edge} with the given fields, pages of up to 50.
func (s *Session) Edge(object, edge, fields string) *Pager {
	path := "/" + object + "/" + edge
	return &Pager{s: s, op: "GET /{id}/" + edge, path: path, query: map[string]string{"fields": fields, "limit": "50"}}
}

// Done reports whether the last page has been read.
func (p *Pager) Done() bool { return p.done }

// Next reads the next page. After the last page it returns nil, nil and Done is true.
func (p *Pager) Next() ([]evidence.Action, error) {
	if p.done {
		return nil, nil
	}
	var (
		resp Response
		err  error
	)
	if p.Calls == 0 {
		resp, err = p.s.Get(p.path, p.query)
	} else {
		resp, err = p.s.follow(p.op, p.next)
	}
	p.Calls++
	p.Usage = resp.Usage
	if err != nil {
		return nil, err
	}
	if _, ok := resp.Result["data"]; !ok {
		// Not a page (true, null, an object without data): never the last
		// page, which would prove a comment absent.
		return nil, &Error{Class: Transient, Op: p.op, Message: "unexpected response shape: no data", Usage: resp.Usage}
	}
	var page struct {
		Data   []item `json:"data"`
		Paging struct {
			Next string `json:"next"`
		} `json:"paging"`
	}
	if err := decode(resp.Result, &page); err != nil {
		return nil, &Error{Class: Transient, Op: p.op, Message: "unexpected response shape: " + err.Error()}
	}
	p.next = page.Paging.Next
	p.done = p.next == "" || len(page.Data) == 0
	actions := make([]evidence.Action, 0, len(page.Data))
	for _, it := range page.Data {
		actions = append(actions, it.action())
	}
	return actions, nil
}

// MentionedMedia reads the media `mediaID` through the brand account's
// mentioned_media field: Meta answers only if its caption @mentions the brand.
func (s *Session) MentionedMedia(brandIGUserID, mediaID string) (evidence.Action, Usage, error) {
	resp, err := s.Get("/"+brandIGUserID, map[string]string{
		"fields": fmt.Sprintf("mentioned_media.media_id(%s){id,caption,username,timestamp,media_type}", mediaID),
	})
	if err != nil {
		return evidence.Action{}, resp.Usage, err
	}
	var body struct {
		Mentioned *item `json:"mentioned_media"`
	}
	if err := decode(resp.Result, &body); err != nil || body.Mentioned == nil {
		return evidence.Action{}, resp.Usage, &Error{Class: NotFound, Op: "GET /{ig-user-id}?fields=mentioned_media", Message: "media does not mention the account"}
	}
	return body.Mentioned.action(), resp.Usage, nil
}

// item is the union of the fields of a comment, a tagged or mentioning media,
// and a reaction.
type item struct {
	ID          string `json:"id"`
	Text        string `json:"text"`    // IG comment
	Message     string `json:"message"` // FB comment
	Caption     string `json:"caption"` // IG media
	Timestamp   string `json:"timestamp"`
	CreatedTime string `json:"created_time"`
	Username    string `json:"username"`
	Name        string `json:"name"` // FB reaction: the person
	From        *struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"from"`
	Type string `json:"type"` // reaction type
}

func (it item) action() evidence.Action {
	a := evidence.Action{ID: it.ID, Username: it.Username, Text: firstNonEmpty(it.Text, it.Message, it.Caption)}
	if it.From != nil {
		a.UserID = it.From.ID
		a.Username = firstNonEmpty(it.From.Username, it.Username, it.From.Name)
	}
	if it.Type != "" && it.From == nil { // a reaction: its id is the person's
		a.UserID = it.ID
		a.Username = firstNonEmpty(it.Name, it.Username)
	}
	a.Time = parseTime(firstNonEmpty(it.Timestamp, it.CreatedTime))
	return a
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// parseTime reads Meta's "2006-01-02T15:04:05+0000" and RFC 3339.
func parseTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func decode(res facebook.Result, v any) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
