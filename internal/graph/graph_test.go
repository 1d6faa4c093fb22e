package graph_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
)

const token = "EAABtesttokenvalue"

func TestClassify(t *testing.T) {
	buc := `{"123":[{"type":"instagram","call_count":100,"total_cputime":4,"total_time":9,"estimated_time_to_regain_access":7}]}`
	tests := []struct {
		name    string
		status  int
		body    string
		header  map[string]string
		want    graph.Class
		code    int
		regain  time.Duration
		errText string
	}{
		{name: "expired token", status: 400, body: `{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A1"}}`, want: graph.TokenBroken, code: 190},
		{name: "password changed", status: 400, body: `{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"error_subcode":460}}`, want: graph.TokenBroken, code: 190},
		{name: "app limit", status: 400, body: `{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","is_transient":true,"code":4}}`, header: map[string]string{"X-App-Usage": `{"call_count":100,"total_cputime":1,"total_time":1}`}, want: graph.Throttled, code: 4},
		{name: "user limit", status: 400, body: `{"error":{"message":"(#17) User request limit reached","code":17}}`, want: graph.Throttled, code: 17},
		{name: "page limit", status: 400, body: `{"error":{"message":"(#32) Page request limit reached","code":32}}`, want: graph.Throttled, code: 32},
		{name: "custom limit", status: 400, body: `{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}`, want: graph.Throttled, code: 613},
		{name: "instagram BUC", status: 400, body: `{"error":{"message":"There have been too many calls to this Instagram account.","code":80002}}`, header: map[string]string{"X-Business-Use-Case-Usage": buc}, want: graph.Throttled, code: 80002, regain: 7 * time.Minute},
		{name: "no permission (10)", status: 403, body: `{"error":{"message":"(#10) Application does not have permission for this action","type":"OAuthException","code":10}}`, want: graph.Permission, code: 10},
		{name: "permissions error (200)", status: 403, body: `{"error":{"message":"(#200) Permissions error","type":"OAuthException","code":200}}`, want: graph.Permission, code: 200},
		{name: "object does not exist", status: 400, body: `{"error":{"message":"Unsupported get request. Object with ID '1' does not exist","type":"GraphMethodException","code":100,"error_subcode":33}}`, want: graph.NotFound, code: 100},
		{name: "bad parameter", status: 400, body: `{"error":{"message":"(#100) Tried accessing nonexisting field","type":"OAuthException","code":100}}`, want: graph.Permanent, code: 100},
		{name: "unknown error, transient", status: 500, body: `{"error":{"message":"An unexpected error has occurred.","type":"OAuthException","is_transient":true,"code":2}}`, want: graph.Transient, code: 2},
		{name: "proxy error page", status: 502, body: `<html>Bad Gateway</html>`, want: graph.Transient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			c := graph.New(graph.Config{BaseURL: srv.URL, Version: "v21.0", AppID: "1", AppSecret: secret.New("appsecret")})
			_, err := c.Session(context.Background(), secret.New(token)).Get("/17900/comments", nil)
			if err == nil {
				t.Fatal("no error")
			}
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("not a *graph.Error: %T %v", err, err)
			}
			if ge.Class != tt.want || ge.Code != tt.code || ge.RetryAfter != tt.regain {
				t.Fatalf("got class %s code %d regain %v, want %s %d %v", ge.Class, ge.Code, ge.RetryAfter, tt.want, tt.code, tt.regain)
			}
			if graph.ClassOf(err) != tt.want {
				t.Fatalf("ClassOf = %s", graph.ClassOf(err))
			}
			if strings.Contains(err.Error(), token) {
				t.Fatalf("token in error: %v", err)
			}
		})
	}
}

func TestNetworkErrorsAreTransientAndCarryNoToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	c := graph.New(graph.Config{BaseURL: url, Version: "v21.0", AppID: "1", Timeout: time.Second})
	_, err := c.Session(context.Background(), secret.New(token)).Get("/17900/comments", nil)
	if graph.ClassOf(err) != graph.Transient || strings.Contains(err.Error(), token) {
		t.Fatalf("err = %v", err)
	}
}

func TestPagerFollowsNextAndReadsUsage(t *testing.T) {
	var srv *httptest.Server
	var proofs []string
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proofs = append(proofs, r.URL.Query().Get("appsecret_proof"))
		w.Header().Set("X-App-Usage", `{"call_count":12,"total_cputime":3,"total_time":20}`)
		if r.URL.Query().Get("after") == "" {
			fmt.Fprintf(w, `{"data":[{"id":"c2","text":"hi","timestamp":"2026-11-28T12:00:00+0000","username":"maya","from":{"id":"9","username":"maya"}}],
				"paging":{"cursors":{"before":"b","after":"a1"},"next":"%s/v21.0/17900/comments?access_token=%s&after=a1&limit=50"}}`, srv.URL, token)
			return
		}
		fmt.Fprint(w, `{"data":[{"id":"c1","message":"old","created_time":"2026-11-27T12:00:00+0000","from":{"id":"10","name":"Sam Lee"}}],"paging":{"cursors":{"before":"a1","after":"a2"}}}`)
	}))
	defer srv.Close()
	c := graph.New(graph.Config{BaseURL: srv.URL, Version: "v21.0", AppID: "1", AppSecret: secret.New("appsecret")})
	p := c.Session(context.Background(), secret.New(token)).Edge("17900", "comments", "id,text")
	first, err := p.Next()
	if err != nil || len(first) != 1 || first[0].Username != "maya" || first[0].UserID != "9" || first[0].Time.Hour() != 12 {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	if p.Usage.App == nil || p.Usage.MaxPercent() != 20 {
		t.Fatalf("usage = %+v", p.Usage)
	}
	second, err := p.Next()
	if err != nil || len(second) != 1 || second[0].Username != "Sam Lee" || second[0].Text != "old" || !p.Done() || p.Calls != 2 {
		t.Fatalf("second page: %+v, %v, done=%v calls=%d", second, err, p.Done(), p.Calls)
	}
	if len(proofs) != 2 || proofs[0] == "" || proofs[0] != proofs[1] {
		t.Fatalf("appsecret_proof not sent on every page: %q", proofs)
	}
}
