package graph_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socialproof/verifier/internal/evidence"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
)

const (
	fuzzHost      = "graph.test" // paging.next URLs in the corpus name this host
	fuzzAppSecret = "appsecret-fuzz"
)

// fuzzServed is what the test server answers every request with.
type fuzzServed struct {
	status             int
	body               []byte
	appUsage, bucUsage string
}

// testServerOnly routes requests for fuzzHost (and the server itself) to the
// test server and refuses every other host, so a fuzzed paging.next never
// leaves the machine; it remembers refused requests that carried the token.
type testServerOnly struct {
	addr string
	next http.RoundTripper

	mu          sync.Mutex
	tokenLeaked bool
}

func (g *testServerOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != fuzzHost && r.URL.Host != g.addr {
		if strings.Contains(r.URL.RawQuery, token) || strings.Contains(r.Header.Get("Authorization"), token) {
			g.mu.Lock()
			g.tokenLeaked = true
			g.mu.Unlock()
		}
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("fuzz: only the test server may be reached")
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = "http", g.addr, ""
	return g.next.RoundTrip(out)
}

func (g *testServerOnly) leaked() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.tokenLeaked
	g.tokenLeaked = false
	return l
}

const (
	bucThrottle = `{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":4,"total_time":9,"estimated_time_to_regain_access":7}]}`
	pageOne     = `{"data":[{"id":"c2","text":"hi CODE1","timestamp":"2026-11-28T12:00:00+0000","username":"maya","from":{"id":"9","username":"maya"}}],` +
		`"paging":{"cursors":{"before":"b","after":"a1"},"next":"http://graph.test/v21.0/17900/comments?after=a1&limit=50"}}`
)

// FuzzGraphResponse feeds arbitrary responses (status, body, usage headers)
// through the real client, against an httptest server: a paged edge read
// (Pager.Next, following paging.next) and a mentioned_media read. Nothing
// panics; every failure is a classified *graph.Error that names neither the
// token nor the app secret; what succeeds has UTC times and valid text.
func FuzzGraphResponse(f *testing.F) {
	add := func(status uint16, body, appUsage, bucUsage string) {
		f.Add(status-200, []byte(body), appUsage, bucUsage)
	}
	add(200, pageOne, `{"call_count":12,"total_cputime":3,"total_time":20}`, "")
	add(200, `{"data":[{"id":"c1","message":"old","created_time":"2026-11-27T12:00:00+0000","from":{"id":"10","name":"Sam Lee"}}],"paging":{"cursors":{"after":"a2"}}}`, "", "")
	add(200, `{"data":[{"id":"9","name":"Sam Lee","type":"LIKE"},{"id":"8","type":"LOVE"}]}`, "", "")
	add(200, `{"mentioned_media":{"id":"17900000000000002","caption":"@brand CODE1","username":"maya","timestamp":"2026-11-28T12:00:00+0000","media_type":"IMAGE"},"id":"17841400000000001"}`, "", "")
	add(400, `{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A1"}}`, "", "")
	add(400, `{"error":{"message":"too many calls","code":80002}}`, "", bucThrottle)
	add(400, `{"error":{"message":"(#4) Application request limit reached","is_transient":true,"code":4}}`, `{"call_count":100,"total_cputime":1,"total_time":1}`, "")
	add(400, `{"error":{"message":"limit","code":80002}}`, "", `{"1":[{"estimated_time_to_regain_access":9223372036854775807}]}`)
	add(400, `{"error":{"message":"Unsupported get request","code":100,"error_subcode":33}}`, "", "")
	add(403, `{"error":{"message":"(#10) no permission","code":10}}`, "", "")
	add(400, `{"error":{"message":"x","code":"190"}}`, "", "")
	add(400, `{"error":"a string"}`, "", "")
	add(500, `{"error":{"message":"unexpected","is_transient":true,"code":2}}`, "", "")
	add(502, `<html>Bad Gateway</html>`, "", "")
	add(503, `{}`, "", "")
	add(500, `{"data":[]}`, "", "")
	add(204, ``, "", "")
	add(200, `true`, "", "")
	add(200, `null`, "", "")
	add(200, ``, "", "")
	add(200, `[]`, "", "")
	add(200, `{"data":null}`, "", "")
	add(200, `{"data":{}}`, "", "")
	add(200, `{"data":[null,1,"x",[]]}`, "", "")
	add(200, `{"data":[{"id":17900000000000001}]}`, "", "")
	add(200, `{"data":[{"id":"1","timestamp":"yesterday","created_time":"9999-12-31T23:59:59-23:59","from":null}]}`, "", "")
	add(200, "{\"data\":[{\"id\":\"1\",\"text\":\"caf\xe9 \\u0000 \\ud800\",\"username\":\"\xff\"}]}", "", "")
	add(200, `{"data":[{"id":"1"}],"paging":{"next":"http://evil.example/v21.0/17900/comments?after=x"}}`, "", "")
	add(200, `{"data":[{"id":"1"}],"paging":{"next":"http://[::1"}}`, "", "")
	add(200, `{"data":[{"id":"1"}],"paging":{"next":"/relative?access_token=x"}}`, "", "")
	add(200, `{"data":[{"id":"1"}],"paging":{"next":"http://graph.test/v21.0/17900/comments?access_token=other&appsecret_proof=p"}}`, "", "")
	add(200, `{"data":[],"x":1e999999,"y":-0.0e-999}`, `{"call_count":1e99}`, `{"1":[null,{"call_count":-5}]}`)
	add(200, `{"data":[`+strings.Repeat(`[`, 10001)+`]}`, `not json`, `[]`)
	add(200, `{"data":[{"id":"1"}]} trailing`, "", "")
	add(599, `{"data":[{"id":"1"}]}`, "\x00\r\n", "\xff")

	var (
		mu     sync.Mutex
		served fuzzServed
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := served
		mu.Unlock()
		if s.appUsage != "" {
			w.Header().Set("X-App-Usage", s.appUsage)
		}
		if s.bucUsage != "" {
			w.Header().Set("X-Business-Use-Case-Usage", s.bucUsage)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	f.Cleanup(srv.Close)
	// The client's http.Client has no Transport of its own: it uses
	// http.DefaultTransport, which the guard replaces while this test runs.
	guard := &testServerOnly{addr: strings.TrimPrefix(srv.URL, "http://"), next: http.DefaultTransport}
	http.DefaultTransport = guard
	f.Cleanup(func() { http.DefaultTransport = guard.next })

	client := graph.New(graph.Config{BaseURL: "http://" + fuzzHost, Version: "v21.0", AppID: "1",
		AppSecret: secret.New(fuzzAppSecret), Timeout: 5 * time.Second})
	m := hmac.New(sha256.New, []byte(fuzzAppSecret))
	m.Write([]byte(token))
	proof := hex.EncodeToString(m.Sum(nil))

	f.Fuzz(func(t *testing.T, status uint16, body []byte, appUsage, bucUsage string) {
		code := 200 + int(status)%400
		mu.Lock()
		served = fuzzServed{status: code, body: body, appUsage: appUsage, bucUsage: bucUsage}
		mu.Unlock()
		secretsInBody := bytes.Contains(body, []byte(token)) || bytes.Contains(body, []byte(fuzzAppSecret)) || bytes.Contains(body, []byte(proof))
		checkErr := func(what string, err error) *graph.Error {
			t.Helper()
			if err == nil {
				return nil
			}
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("%s: not a *graph.Error: %T %v", what, err, err)
			}
			switch ge.Class {
			case graph.Transient, graph.Throttled, graph.TokenBroken, graph.Permission, graph.NotFound, graph.Permanent:
			default:
				t.Fatalf("%s: class %q", what, ge.Class)
			}
			if graph.ClassOf(err) != ge.Class || ge.Op == "" {
				t.Fatalf("%s: ClassOf %s, Op %q", what, graph.ClassOf(err), ge.Op)
			}
			msg := err.Error()
			if !secretsInBody && (strings.Contains(msg, token) || strings.Contains(msg, fuzzAppSecret) || strings.Contains(msg, proof)) {
				t.Fatalf("%s: a secret in the error: %v", what, err)
			}
			if ge.Class == graph.Throttled && ge.RetryAfter != ge.Usage.RegainAfter() {
				t.Fatalf("%s: RetryAfter %v, usage says %v", what, ge.RetryAfter, ge.Usage.RegainAfter())
			}
			regain := 0 // the longest estimated_time_to_regain_access, in minutes
			for _, b := range ge.Usage.BUC {
				regain = max(regain, b.RegainMinutes)
			}
			if ge.RetryAfter < 0 || (ge.Class == graph.Throttled && regain > 0 && ge.RetryAfter < time.Minute) {
				t.Fatalf("%s: RetryAfter %v for %d minutes", what, ge.RetryAfter, regain)
			}
			return ge
		}
		// A body that is not a JSON object (nor null, nor Meta's bare true)
		// cannot be read: a transient failure, as for a proxy's error page.
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		unreadable := dec.Decode(&obj) != nil && string(body) != "true"
		var topLevelError bool
		if obj != nil {
			_, topLevelError = obj["error"]
		}
		_, hasData := obj["data"]
		mustFail := unreadable || (code >= 500 || topLevelError)

		sess := client.Session(context.Background(), secret.New(token))
		p := sess.Edge("17900", "comments", "id,text,username,timestamp,from")
		for call := 1; call <= 3 && !p.Done(); call++ {
			actions, err := p.Next()
			ge := checkErr("Pager.Next", err)
			if p.Calls != call {
				t.Fatalf("Calls = %d after %d calls", p.Calls, call)
			}
			if mustFail && err == nil {
				t.Fatalf("page %d: %d %q read as %d actions", call, code, body, len(actions))
			}
			if unreadable && err != nil && ge.Class != graph.Transient {
				t.Fatalf("an unreadable body is %s, want transient", ge.Class)
			}
			if err == nil && !hasData {
				t.Fatalf("a page without data: %q", body)
			}
			if err != nil {
				if actions != nil {
					t.Fatalf("actions with an error")
				}
				break
			}
			for _, a := range actions {
				if !a.Time.IsZero() && a.Time.Location() != time.UTC {
					t.Fatalf("time %v is not UTC", a.Time)
				}
				for _, s := range []string{a.ID, a.Username, a.UserID, a.Text} {
					if !utf8.ValidString(s) {
						t.Fatalf("%q is not UTF-8", s)
					}
				}
			}
		}
		if p.Done() {
			if actions, err := p.Next(); actions != nil || err != nil {
				t.Fatalf("Next after the last page: %v, %v", actions, err)
			}
		}

		a, usage, err := sess.MentionedMedia("17841400000000001", "17900000000000002")
		ge := checkErr("MentionedMedia", err)
		switch {
		case err == nil && mustFail:
			t.Fatalf("MentionedMedia: %d %q read as %+v", code, body, a)
		case err == nil && (a.Time.Location() != time.UTC && !a.Time.IsZero()):
			t.Fatalf("MentionedMedia time %v", a.Time)
		case err != nil && a != (evidence.Action{}):
			t.Fatalf("MentionedMedia: an action with an error: %+v", a)
		case ge != nil && ge.Class == graph.Throttled && !usage.Known() && ge.RetryAfter != 0:
			t.Fatalf("MentionedMedia: RetryAfter %v without usage", ge.RetryAfter)
		}
		if guard.leaked() {
			t.Fatalf("the token was sent to another host than the API's")
		}
	})
}
