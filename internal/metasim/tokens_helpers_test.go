package metasim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/metasim"
)

// recorder is an http.RoundTripper that keeps the last answer's status and
// headers, so tests can look at what huandu does not show (Date).
type recorder struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	status int
	header http.Header
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.status, r.header = resp.StatusCode, resp.Header.Clone()
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) last() (int, http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.header
}

func (e *env) mint(t *testing.T, o metasim.MintOptions) metasim.Token {
	t.Helper()
	tok, err := e.sim.MintToken(o)
	if err != nil {
		t.Fatalf("MintToken(%+v): %v", o, err)
	}
	return tok
}

// oauthApp is an App whose ExchangeToken talks to the sim; version "" asks
// for the unversioned /oauth/access_token.
func (e *env) oauthApp(id, secret, version string, client *http.Client) *facebook.App {
	app := facebook.New(id, secret)
	s := app.Session("")
	s.BaseURL = e.srv.URL + "/"
	s.Version = version
	s.HttpClient = client
	if client == nil {
		s.HttpClient = e.srv.Client()
	}
	app.SetSession(s)
	return app
}

// debugData is the data object of a /debug_token answer.
type debugData struct {
	AppID               string   `json:"app_id"`
	Type                string   `json:"type"`
	Application         string   `json:"application"`
	DataAccessExpiresAt int64    `json:"data_access_expires_at"`
	ExpiresAt           int64    `json:"expires_at"`
	IsValid             bool     `json:"is_valid"`
	IssuedAt            int64    `json:"issued_at"`
	ProfileID           string   `json:"profile_id"`
	Scopes              []string `json:"scopes"`
	GranularScopes      []struct {
		Scope     string   `json:"scope"`
		TargetIDs []string `json:"target_ids"`
	} `json:"granular_scopes"`
	UserID string `json:"user_id"`
	Error  struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Subcode int    `json:"subcode"`
	} `json:"error"`
	keys map[string]bool
}

// debugToken asks /debug_token about value with the app access token, as
// Meta wants it, and decodes the answer's data.
func (e *env) debugToken(t *testing.T, value string) debugData {
	t.Helper()
	app := facebook.New(testAppID, testAppSecret)
	res, err := e.sessionWith(app, app.AppAccessToken(), false).Get("/debug_token", facebook.Params{"input_token": value})
	if err != nil {
		t.Fatalf("debug_token: %v", err)
	}
	for k := range res {
		if k != "data" && !strings.HasPrefix(k, "__") { // huandu adds __usage__
			t.Fatalf("debug_token answer has %q besides data: %v", k, res)
		}
	}
	if res["data"] == nil {
		t.Fatalf("debug_token answer is not {\"data\":{...}}: %v", res)
	}
	raw, err := json.Marshal(res["data"])
	if err != nil {
		t.Fatal(err)
	}
	var d debugData
	var keys map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("debug_token data %s: %v", raw, err)
	}
	json.Unmarshal(raw, &keys)
	d.keys = map[string]bool{}
	for k := range keys {
		d.keys[k] = true
	}
	return d
}

// post sends a JSON body to a side endpoint.
func (e *env) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := e.srv.Client().Post(e.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (e *env) tokenByID(id string) (metasim.Token, bool) {
	for _, t := range e.sim.World().Tokens {
		if t.ID == id {
			return t, true
		}
	}
	return metasim.Token{}, false
}

func (e *env) tokenByValue(v string) (metasim.Token, bool) {
	for _, t := range e.sim.World().Tokens {
		if t.Value == v {
			return t, true
		}
	}
	return metasim.Token{}, false
}

// graphErr makes a Graph call with value and returns its error, nil on success.
func (e *env) graphErr(value, path string) error {
	_, err := e.session(value).Get(path, nil)
	return err
}
