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

// submitAnswer is either answer of POST /v1/claims.
type submitAnswer struct {
	Results []api.SubmitResult `json:"results"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// postRaw sends body as is to POST /v1/claims with acme's key.
func postRaw(t *testing.T, url, contentType string, body []byte) (int, submitAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/claims", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+acmeKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var ans submitAnswer
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, ans
}

// storedKeys lists "tenant/key" of every claim in the store.
func storedKeys(t *testing.T, st store.Store) []string {
	t.Helper()
	ctx := context.Background()
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, s := range stats {
		total += s.Pending + s.Leased + s.Quarantined
		for _, n := range s.Decided {
			total += n
		}
	}
	ids := make([]int64, 0, total+10)
	for id := int64(1); id <= int64(total+10); id++ { // ids are dense from 1 in a fresh store
		ids = append(ids, id)
	}
	claims, err := st.Claims(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != total {
		t.Fatalf("read %d claims, the store counts %d", len(claims), total)
	}
	keys := make([]string, 0, len(claims))
	for _, c := range claims {
		keys = append(keys, c.Tenant+"/"+c.Key)
	}
	slices.Sort(keys)
	return keys
}

// rawClaim is a claim object of acme with one field's raw JSON value
// replaced (field "" replaces nothing).
func rawClaim(key, field, raw string) string {
	vals := map[string]string{
		"tenant": `"acme"`, "key": `"` + key + `"`, "user": `"u-` + key + `"`, "handle": `"h_` + key + `"`,
		"kind": `"ig_comment"`, "target": `"17890000000000001"`,
	}
	if field != "" {
		vals[field] = raw
	}
	var b strings.Builder
	b.WriteString("{")
	for i, f := range []string{"tenant", "key", "user", "handle", "kind", "target"} {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%s", f, vals[f])
	}
	b.WriteString("}")
	return b.String()
}

func batch(claims ...string) []byte {
	return []byte(`{"claims":[` + strings.Join(claims, ",") + `]}`)
}

// Bad input gets a clear answer and loses nothing: a refused body stores
// nothing and says why; in an accepted body every claim is accepted or
// refused with its reason, and exactly the accepted ones are stored.
func TestSubmitBadInput(t *testing.T) {
	ok1, ok2 := rawClaim("ok1", "", ""), rawClaim("ok2", "", "")
	type want struct {
		status   int
		code     string   // error code, for a refused body
		message  string   // in the error message, for a refused body
		statuses []string // per claim, for an accepted body
		reasons  []string // per claim: in the refusal reason ("" for accepted)
		stored   []string // tenant/key stored afterwards
	}
	tests := []struct {
		name        string
		contentType string
		body        []byte
		want        want
	}{
		{
			name: "body over the limit",
			body: batch(ok1, rawClaim("big", "handle", `"`+strings.Repeat("x", 70<<10)+`"`)),
			want: want{status: 413, code: "too_large", message: "over 65536 bytes"},
		},
		{
			name: "over the limit in white space after the object",
			body: append(batch(ok1), bytes.Repeat([]byte(" "), 70<<10)...),
			want: want{status: 413, code: "too_large", message: "over 65536 bytes"},
		},
		{
			name: "batch over the limit is refused whole",
			body: func() []byte {
				cs := make([]string, 51)
				for i := range cs {
					cs[i] = rawClaim(fmt.Sprintf("k%d", i), "", "")
				}
				return batch(cs...)
			}(),
			want: want{status: 400, code: "bad_request", message: "send 1 to 50 claims, got 51"},
		},
		{
			name: "empty body",
			body: nil,
			want: want{status: 400, code: "bad_request", message: `the body must be {"claims":[...]}`},
		},
		{
			name: "null body",
			body: []byte(`null`),
			want: want{status: 400, code: "bad_request", message: "got 0"},
		},
		{
			name: "claims is not a list",
			body: []byte(`{"claims":{"tenant":"acme"}}`),
			want: want{status: 400, code: "bad_request", message: "cannot unmarshal object"},
		},
		{
			name: "a second object after the batch would be lost",
			body: append(batch(ok1), batch(ok2)...),
			want: want{status: 400, code: "bad_request", message: "data after the object"},
		},
		{
			name: "a stray bracket after the batch",
			body: append(batch(ok1), ']'),
			want: want{status: 400, code: "bad_request", message: "data after the object"},
		},
		{
			name: "syntax error inside one claim refuses the body",
			body: batch(ok1, `{"tenant":"acme",}`),
			want: want{status: 400, code: "bad_request", message: "invalid character"},
		},
		{
			name: "nesting too deep",
			body: []byte(`{"claims":[` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `]}`),
			want: want{status: 400, code: "bad_request", message: "depth"},
		},
		{
			name:        "form-encoded body",
			contentType: "application/x-www-form-urlencoded",
			body:        []byte(`claims=` + ok1),
			want:        want{status: 400, code: "bad_request", message: "invalid character"},
		},
		{
			name:        "JSON sent as text/plain is still read as JSON",
			contentType: "text/plain",
			body:        batch(ok1),
			want:        want{status: 200, statuses: []string{"accepted"}, reasons: []string{""}, stored: []string{"acme/ok1"}},
		},
		{
			name: "unknown kind: that claim refused, the others stored",
			body: batch(ok1, rawClaim("bad", "kind", `"tiktok_duet"`), ok2),
			want: want{status: 200,
				statuses: []string{"accepted", "refused", "accepted"},
				reasons:  []string{"", `unknown kind "tiktok_duet"`, ""},
				stored:   []string{"acme/ok1", "acme/ok2"}},
		},
		{
			name: "invalid target ids",
			body: batch(ok1,
				rawClaim("t1", "target", `"abc"`),
				rawClaim("t2", "target", `"-1"`),
				rawClaim("t3", "target", `"1.5"`),
				rawClaim("t4", "target", `"1_2_3"`),
				rawClaim("t5", "target", `" 17890000000000001"`),
				rawClaim("t6", "target", `"`+strings.Repeat("9", 129)+`"`),
				rawClaim("t7", "target", `17890000000000001`),
				rawClaim("t8", "target", `1e400`),
				rawClaim("t9", "target", `""`),
				ok2),
			want: want{status: 200,
				statuses: []string{"accepted", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "accepted"},
				reasons: []string{"", `"target" "abc" is not a Meta object id`, `"target" "-1"`, `"target" "1.5"`, `"target" "1_2_3"`,
					`"target" " 1789`, `"target" "9999`, "cannot unmarshal number", "cannot unmarshal number", `"target" is required`, ""},
				stored: []string{"acme/ok1", "acme/ok2"}},
		},
		{
			name: "non-UTF-8 bytes in a handle and in a key",
			body: batch(ok1, rawClaim("u1", "handle", "\"caf\xe9\""), rawClaim("u2", "key", "\"k\xff\xfe\""), ok2),
			want: want{status: 200,
				statuses: []string{"accepted", "refused", "refused", "accepted"},
				reasons:  []string{"", "not valid UTF-8", "not valid UTF-8", ""},
				stored:   []string{"acme/ok1", "acme/ok2"}},
		},
		{
			name: "control characters in a handle",
			body: batch(ok1, rawClaim("c1", "handle", `"maya\u0000"`), rawClaim("c2", "handle", `"ma\nya"`), ok2),
			want: want{status: 200,
				statuses: []string{"accepted", "refused", "refused", "accepted"},
				reasons:  []string{"", `"handle" has control characters`, `"handle" has control characters`, ""},
				stored:   []string{"acme/ok1", "acme/ok2"}},
		},
		{
			name: "another tenant's claim in the batch",
			body: batch(ok1, rawClaim("o1", "tenant", `"other"`), ok2),
			want: want{status: 200,
				statuses: []string{"accepted", "refused", "accepted"},
				reasons:  []string{"", `tenant "other" is not the API key's tenant`, ""},
				stored:   []string{"acme/ok1", "acme/ok2"}},
		},
		{
			name: "claims that are not claim objects",
			body: batch(`"a string"`, `5`, `null`, `[]`, `{}`, ok1, rawClaim("x", "", "")[:len(rawClaim("x", "", ""))-1]+`,"tenant":"other"}`),
			want: want{status: 200,
				statuses: []string{"refused", "refused", "refused", "refused", "refused", "accepted", "refused"},
				reasons: []string{"cannot unmarshal string", "cannot unmarshal number", `"tenant" is required`, "cannot unmarshal array",
					`"tenant" is required`, "", "not the API key's tenant"},
				stored: []string{"acme/ok1"}},
		},
		{
			name: "a claim over the line limit",
			body: batch(ok1, rawClaim("long", "handle", `"`+strings.Repeat("x", 5000)+`"`)),
			want: want{status: 200,
				statuses: []string{"accepted", "refused"},
				reasons:  []string{"", "longer than 4096 bytes"},
				stored:   []string{"acme/ok1"}},
		},
		{
			name: "unknown and mis-cased fields",
			body: batch(ok1, `{"tenant":"acme","key":"f1","user":"u","kind":"ig_like","target":"1","reward":10}`),
			want: want{status: 200,
				statuses: []string{"accepted", "refused"},
				reasons:  []string{"", `unknown field "reward"`},
				stored:   []string{"acme/ok1"}},
		},
	}
	for _, backend := range testenv.Backends {
		t.Run(backend, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					url, st := newAPIOn(t, backend, 64<<10, 50)
					status, ans := postRaw(t, url, tt.contentType, tt.body)
					w := tt.want
					if status != w.status {
						t.Fatalf("status %d, want %d: %+v", status, w.status, ans)
					}
					if w.code != "" {
						if ans.Error == nil || ans.Error.Code != w.code || !strings.Contains(ans.Error.Message, w.message) {
							t.Fatalf("error %+v, want code %s with %q", ans.Error, w.code, w.message)
						}
					} else {
						if len(ans.Results) != len(w.statuses) {
							t.Fatalf("%d results, want %d: %+v", len(ans.Results), len(w.statuses), ans.Results)
						}
						for i, r := range ans.Results {
							if r.Index != i || r.Status != w.statuses[i] || !strings.Contains(r.Reason, w.reasons[i]) ||
								(r.Status == api.StatusRefused) != (r.Reason != "") || (r.Status == api.StatusRefused) != (r.ID == 0) {
								t.Errorf("result %d = %+v, want %s with %q", i, r, w.statuses[i], w.reasons[i])
							}
						}
					}
					if got := storedKeys(t, st); !slices.Equal(got, w.stored) && (len(got) > 0 || len(w.stored) > 0) {
						t.Errorf("stored %q, want %q", got, w.stored)
					}
				})
			}
		})
	}
}

// The default limit: 1,000 claims are taken, 1,001 are refused whole.
func TestSubmitDefaultBatchLimit(t *testing.T) {
	url, st := newAPIOn(t, testenv.SQLite, 0, 0)
	claims := make([]string, api.DefaultMaxBatch+1)
	for i := range claims {
		claims[i] = rawClaim(fmt.Sprintf("k%04d", i), "", "")
	}
	status, ans := postRaw(t, url, "application/json", batch(claims...))
	if status != 400 || ans.Error == nil || ans.Error.Code != "bad_request" ||
		!strings.Contains(ans.Error.Message, "send 1 to 1000 claims, got 1001") {
		t.Fatalf("%d %+v", status, ans.Error)
	}
	if got := storedKeys(t, st); len(got) != 0 {
		t.Fatalf("a refused batch stored %d claims", len(got))
	}

	status, ans = postRaw(t, url, "application/json", batch(claims[:api.DefaultMaxBatch]...))
	if status != 200 || len(ans.Results) != api.DefaultMaxBatch {
		t.Fatalf("1,000 claims: %d, %d results %+v", status, len(ans.Results), ans.Error)
	}
	for i, r := range ans.Results {
		if r.Status != api.StatusAccepted {
			t.Fatalf("claim %d: %+v", i, r)
		}
	}
	if got := storedKeys(t, st); len(got) != api.DefaultMaxBatch {
		t.Fatalf("stored %d claims, want %d", len(got), api.DefaultMaxBatch)
	}
}

func newAPIOn(t *testing.T, backend string, maxBody int64, maxBatch int) (string, store.Store) {
	t.Helper()
	st, _ := testenv.OpenStore(t, backend)
	if err := st.AddAPIKey(context.Background(), store.APIKey{Tenant: "acme", Name: "test", Key: acmeKey, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddAPIKey(context.Background(), store.APIKey{Tenant: "other", Name: "test", Key: otherKey, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&api.Server{Store: st, MaxBody: maxBody, MaxBatch: maxBatch}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, st
}
