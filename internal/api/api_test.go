package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

const (
	acmeKey  = "acme-key-0123456789abcdef0123456789abcdef"
	otherKey = "other-key-0123456789abcdef0123456789abcdef"
)

type client struct {
	t   *testing.T
	url string
}

// do sends a request with an API key ("" for none) and decodes the JSON
// answer into out; it returns the status.
func (c client) do(method, path, key string, body any, out any) int {
	c.t.Helper()
	var r *bytes.Reader
	switch b := body.(type) {
	case nil:
		r = bytes.NewReader(nil)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.url+path, r)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func newAPI(t *testing.T) (client, store.Store) {
	t.Helper()
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	ctx := context.Background()
	for tenant, key := range map[string]string{"acme": acmeKey, "other": otherKey} {
		if err := st.AddAPIKey(ctx, store.APIKey{Tenant: tenant, Name: "test", Key: key, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer((&api.Server{Store: st, MaxBody: 64 << 10, MaxBatch: 50}).Handler())
	t.Cleanup(srv.Close)
	return client{t: t, url: srv.URL}, st
}

func claimJSON(tenant, key string) map[string]any {
	return map[string]any{"tenant": tenant, "key": key, "user": "u-" + key, "handle": "h_" + key, "kind": "ig_comment", "target": "17890000000000001"}
}

type errBody struct {
	Error struct{ Code, Message string }
}

// Submit, read back, follow the feed with its cursor, see a revocation come
// again; another tenant's key sees none of it.
func TestPlatformAPIEndToEnd(t *testing.T) {
	c, st := newAPI(t)
	ctx := context.Background()

	var sub struct{ Results []api.SubmitResult }
	unknownField := claimJSON("acme", "a3")
	unknownField["reward"] = 10
	status := c.do("POST", "/v1/claims", acmeKey, map[string]any{"claims": []any{
		claimJSON("acme", "a1"), claimJSON("acme", "a2"), unknownField, claimJSON("other", "o1"), claimJSON("acme", "a1"),
	}}, &sub)
	if status != 200 || len(sub.Results) != 5 {
		t.Fatalf("submit: %d %+v", status, sub)
	}
	wantStatus := []string{api.StatusAccepted, api.StatusAccepted, api.StatusRefused, api.StatusRefused, api.StatusDuplicate}
	for i, r := range sub.Results {
		if r.Index != i || r.Status != wantStatus[i] {
			t.Errorf("result %d = %+v, want %s", i, r, wantStatus[i])
		}
	}
	if !strings.Contains(sub.Results[2].Reason, "reward") || !strings.Contains(sub.Results[3].Reason, "not the API key's tenant") {
		t.Errorf("refusals without their reasons: %+v", sub.Results[2:4])
	}
	a1, a2 := sub.Results[0].ID, sub.Results[1].ID
	if sub.Results[4].ID != a1 {
		t.Errorf("the duplicate names claim %d, want %d", sub.Results[4].ID, a1)
	}

	var got api.ClaimView
	if status := c.do("GET", fmt.Sprintf("/v1/claims/%d", a1), acmeKey, nil, &got); status != 200 || got.Key != "a1" || got.Status != store.StatusPending {
		t.Fatalf("get claim: %d %+v", status, got)
	}
	var e errBody
	if status := c.do("GET", fmt.Sprintf("/v1/claims/%d", a1), otherKey, nil, &e); status != 404 || e.Error.Code != "not_found" {
		t.Errorf("another tenant's key reads acme's claim: %d %+v", status, e)
	}

	if _, err := st.Decide(ctx, []store.Decision{
		{ClaimID: a2, Verdict: store.VerdictVerified, Method: "webhook", Evidence: `{"comment":"c1"}`},
		{ClaimID: a1, Verdict: store.VerdictApprovedOnHonor, Method: "honor", Evidence: `{"mode":"honor"}`},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var feed api.Feed
	if status := c.do("GET", "/v1/verdicts?limit=1", acmeKey, nil, &feed); status != 200 || len(feed.Verdicts) != 1 || feed.Verdicts[0].ID != a2 {
		t.Fatalf("first page: %d %+v", status, feed)
	}
	if string(feed.Verdicts[0].Evidence) != `{"comment":"c1"}` {
		t.Errorf("evidence %s, want the stored JSON", feed.Verdicts[0].Evidence)
	}
	var page2 api.Feed
	c.do("GET", "/v1/verdicts?after="+feed.Next, acmeKey, nil, &page2)
	if len(page2.Verdicts) != 1 || page2.Verdicts[0].ID != a1 || page2.Verdicts[0].Verdict != store.VerdictApprovedOnHonor {
		t.Fatalf("second page: %+v", page2)
	}
	var empty api.Feed
	if c.do("GET", "/v1/verdicts?after="+page2.Next, acmeKey, nil, &empty); len(empty.Verdicts) != 0 || empty.Next != page2.Next {
		t.Fatalf("nothing new: %+v, want no verdicts and the same cursor %s", empty, page2.Next)
	}

	if ok, err := st.Revoke(ctx, a1, `{"reason":"no comment found"}`, time.Now()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	var revoked api.Feed
	c.do("GET", "/v1/verdicts?after="+page2.Next, acmeKey, nil, &revoked)
	if len(revoked.Verdicts) != 1 || revoked.Verdicts[0].Verdict != store.VerdictRevoked ||
		revoked.Verdicts[0].RevokedFrom != store.VerdictApprovedOnHonor || revoked.Verdicts[0].RevokedAt == nil {
		t.Fatalf("the revocation is not in the feed: %+v", revoked)
	}

	var others api.Feed
	if status := c.do("GET", "/v1/verdicts", otherKey, nil, &others); status != 200 || len(others.Verdicts) != 0 {
		t.Errorf("another tenant's feed holds acme's verdicts: %+v", others)
	}
}

func TestPlatformAPIRefusesBadRequests(t *testing.T) {
	c, _ := newAPI(t)
	many := make([]any, 51)
	for i := range many {
		many[i] = claimJSON("acme", fmt.Sprintf("k%d", i))
	}
	tests := []struct {
		name, method, path, key string
		body                    any
		status                  int
		code                    string
	}{
		{"no key", "GET", "/v1/verdicts", "", nil, 401, "unauthorized"},
		{"unknown key", "GET", "/v1/verdicts", "nope-0123456789abcdef0123456789abcdef", nil, 401, "unauthorized"},
		{"not a batch", "POST", "/v1/claims", acmeKey, []byte(`[{"tenant":"acme"}]`), 400, "bad_request"},
		{"unknown top-level field", "POST", "/v1/claims", acmeKey, []byte(`{"claims":[],"extra":1}`), 400, "bad_request"},
		{"empty batch", "POST", "/v1/claims", acmeKey, map[string]any{"claims": []any{}}, 400, "bad_request"},
		{"huge batch", "POST", "/v1/claims", acmeKey, map[string]any{"claims": many}, 400, "bad_request"},
		{"oversized body", "POST", "/v1/claims", acmeKey, []byte(`{"claims":["` + strings.Repeat("x", 70<<10) + `"]}`), 413, "too_large"},
		{"bad claim id", "GET", "/v1/claims/abc", acmeKey, nil, 400, "bad_request"},
		{"missing claim", "GET", "/v1/claims/999", acmeKey, nil, 404, "not_found"},
		{"bad cursor", "GET", "/v1/verdicts?after=x", acmeKey, nil, 400, "bad_request"},
		{"bad limit", "GET", "/v1/verdicts?limit=5000", acmeKey, nil, 400, "bad_request"},
		{"no such endpoint", "GET", "/v2/anything", acmeKey, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e errBody
			status := client{t, c.url}.do(tt.method, tt.path, tt.key, tt.body, &e)
			if status != tt.status || e.Error.Code != tt.code || e.Error.Message == "" {
				t.Errorf("%d %+v, want %d %s with a message", status, e, tt.status, tt.code)
			}
		})
	}
}

// The OpenAPI document lists exactly the routes the handler serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range api.Routes {
		served = append(served, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented %v, served %v", documented, served)
	}
	c, _ := newAPI(t)
	var got map[string]any
	if status := c.do("GET", "/v1/openapi.json", "", nil, &got); status != 200 || got["openapi"] == nil {
		t.Errorf("GET /v1/openapi.json: %d", status)
	}
}
