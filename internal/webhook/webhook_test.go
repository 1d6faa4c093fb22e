package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/webhook"
)

const (
	appSecret   = "app-secret-0123456789abcdef"
	verifyToken = "meatyhamhock-verify"
)

// sign computes the header independently of webhook.Sign, so a bug there
// cannot hide a bug in verification.
func sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type key struct{ target, edge, id string }

// fakeSink is an idempotent in-memory Sink that records every call.
type fakeSink struct {
	mu    sync.Mutex
	known map[key]bool
	calls [][]webhook.Action
	err   error
}

func (s *fakeSink) SaveActions(_ context.Context, actions []webhook.Action) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, append([]webhook.Action(nil), actions...))
	if s.err != nil {
		return 0, s.err
	}
	if s.known == nil {
		s.known = map[key]bool{}
	}
	n := 0
	for _, a := range actions {
		k := key{a.Target, a.Edge, a.ActionID}
		if !s.known[k] {
			s.known[k] = true
			n++
		}
	}
	return n, nil
}

func (s *fakeSink) saved() []webhook.Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []webhook.Action
	for _, c := range s.calls {
		out = append(out, c...)
	}
	return out
}

func (s *fakeSink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func newHandler(sink webhook.Sink) *webhook.Handler {
	return &webhook.Handler{
		AppSecret:   secret.New(appSecret),
		VerifyToken: secret.New(verifyToken),
		Sink:        sink,
	}
}

func post(h http.Handler, body []byte, signature string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func postSigned(h http.Handler, body string) *httptest.ResponseRecorder {
	return post(h, []byte(body), sign(appSecret, []byte(body)))
}

const igCommentChanges = `{"object":"instagram","entry":[{"id":"17841400000000001","time":1520383571,
  "changes":[{"field":"comments","value":{"id":"17865799348089039","text":"Love it! CODE42",
    "from":{"id":"1789000000000001","username":"jane.doe"},
    "media":{"id":"17887498072083520","media_product_type":"FEED"}}}]}]}`

func TestHandshake(t *testing.T) {
	tests := []struct {
		name       string
		configured string // the handler's VerifyToken
		query      url.Values
		wantStatus int
		wantBody   string
	}{
		{"ok", verifyToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}}, 200, "1158201444"},
		{"wrong token", verifyToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"meatyhamhock"}, "hub.challenge": {"1158201444"}}, 403, ""},
		{"token with a longer prefix", verifyToken, url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken + "x"}, "hub.challenge": {"1"}}, 403, ""},
		{"wrong mode", verifyToken, url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}}, 403, ""},
		{"no mode", verifyToken, url.Values{"hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}}, 403, ""},
		{"no token", verifyToken, url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1158201444"}}, 403, ""},
		{"empty token configured, empty token sent", "", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {""}, "hub.challenge": {"1"}}, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newHandler(sink)
			h.VerifyToken = secret.New(tt.configured)
			req := httptest.NewRequest(http.MethodGet, "/webhook?"+tt.query.Encode(), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantStatus == 200 && rec.Body.String() != tt.wantBody {
				t.Fatalf("body = %q, want exactly %q", rec.Body.String(), tt.wantBody)
			}
			if tt.wantStatus != 200 && strings.Contains(rec.Body.String(), "1158201444") {
				t.Fatalf("refused handshake echoed the challenge: %q", rec.Body.String())
			}
			if sink.callCount() != 0 {
				t.Fatal("handshake reached the sink")
			}
		})
	}
}

func TestForgedPostsRefused(t *testing.T) {
	body := []byte(igCommentChanges)
	other := []byte(strings.Replace(igCommentChanges, "jane.doe", "mallory", 1))
	good := sign(appSecret, body)
	tests := []struct {
		name, signature string
	}{
		{"missing header", ""},
		{"wrong signature", "sha256=" + strings.Repeat("ab", 32)},
		{"signature over a different body", sign(appSecret, other)},
		{"signature with a different secret", sign("not-the-app-secret", body)},
		{"non-hex", "sha256=" + strings.Repeat("zz", 32)},
		{"no prefix", strings.TrimPrefix(good, "sha256=")},
		{"sha1 prefix", "sha1=" + strings.TrimPrefix(good, "sha256=")},
		{"truncated", good[:len(good)-2]},
		{"prefix only", "sha256="},
		{"empty secret", sign("", body)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newHandler(sink)
			rec := post(h, body, tt.signature)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401", rec.Code)
			}
			if n := sink.callCount(); n != 0 {
				t.Fatalf("sink called %d times for a forged delivery", n)
			}
			if got := h.Stats(); got != (webhook.Stats{Refused: 1}) {
				t.Fatalf("stats = %+v, want only Refused: 1", got)
			}
		})
	}

	// The same body, correctly signed, gets through: the refusals above are
	// about the signature, not the payload.
	sink := &fakeSink{}
	if rec := post(newHandler(sink), body, good); rec.Code != 200 || sink.callCount() != 1 {
		t.Fatalf("genuine delivery: status %d, %d sink calls", rec.Code, sink.callCount())
	}
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func TestValidDeliveries(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		want        []webhook.Action // nil: the sink must not be called
		wantIgnored int64
	}{
		{
			name: "instagram comment, Facebook Login changes envelope",
			body: igCommentChanges,
			want: []webhook.Action{{
				Target: "17887498072083520", Edge: "comments", ActionID: "17865799348089039",
				Username: "jane.doe", UserID: "1789000000000001", Text: "Love it! CODE42", Time: unix(1520383571),
			}},
		},
		{
			name: "instagram comment, Instagram Login flat entry",
			body: `{"object":"instagram","entry":[{"id":"17841400000000001","time":1716000000,
			  "field":"comments","value":{"id":"c-1","from":{"id":"u-1","username":"Bob_Smith"},
			  "text":"nice","media":{"id":"m-1","media_product_type":"REELS"}}}]}`,
			want: []webhook.Action{{
				Target: "m-1", Edge: "comments", ActionID: "c-1", Username: "Bob_Smith", UserID: "u-1", Text: "nice", Time: unix(1716000000),
			}},
		},
		{
			name: "instagram reply to a comment keeps the media as target",
			body: `{"object":"instagram","entry":[{"id":"1","time":1716000000,"changes":[{"field":"comments",
			  "value":{"id":"c-2","parent_id":"c-1","from":{"id":"u-2","username":"al"},"text":"+1","media":{"id":"m-1"}}}]}]}`,
			want: []webhook.Action{{Target: "m-1", Edge: "comments", ActionID: "c-2", Username: "al", UserID: "u-2", Text: "+1", Time: unix(1716000000)}},
		},
		{
			name: "instagram mention in a comment",
			body: `[{"entry":[{"changes":[{"field":"mentions","value":{"comment_id":"17894227972186120","media_id":"17918195224117851"}}],
			  "id":"17841405726653026","time":1520622968}],"object":"instagram"}]`,
			want: []webhook.Action{{Target: "17918195224117851", Edge: "mentions", ActionID: "17894227972186120", Time: unix(1520622968)}},
		},
		{
			name: "instagram mention in a caption, flat entry",
			body: `{"object":"instagram","entry":[{"id":"17841405726653026","time":1520622968,
			  "field":"mentions","value":{"media_id":"17918195224117851"}}]}`,
			want: []webhook.Action{{Target: "17918195224117851", Edge: "mentions", ActionID: "17918195224117851", Time: unix(1520622968)}},
		},
		{
			name: "page feed comment added",
			body: `{"object":"page","entry":[{"id":"123456789012345","time":1678886400,"changes":[{"field":"feed","value":{
			  "item":"comment","verb":"add","comment_id":"112233445566778_987654321098765","parent_id":"123456789012345_112233445566778",
			  "post_id":"123456789012345_112233445566778","created_time":1678886390,"message":"Adorei! CODE42",
			  "from":{"id":"234567890123456","name":"Maria Silva"},"is_hidden":false}}]}]}`,
			want: []webhook.Action{{
				Target: "123456789012345_112233445566778", Edge: "comments", ActionID: "112233445566778_987654321098765",
				Username: "Maria Silva", UserID: "234567890123456", Text: "Adorei! CODE42", Time: unix(1678886390),
			}},
		},
		{
			name: "page feed comment edited, ISO time",
			body: `{"object":"page","entry":[{"id":"p","time":1678886400,"changes":[{"field":"feed","value":{
			  "item":"comment","verb":"edited","comment_id":"p_1_c","post_id":"p_1","created_time":"2023-03-15T13:19:50+0000",
			  "message":"edited text","from":{"id":"u","name":"Ann Lee"}}}]}]}`,
			want: []webhook.Action{{
				Target: "p_1", Edge: "comments", ActionID: "p_1_c", Username: "Ann Lee", UserID: "u", Text: "edited text",
				Time: time.Date(2023, 3, 15, 13, 19, 50, 0, time.UTC),
			}},
		},
		{
			name: "page feed comment removed",
			body: `{"object":"page","entry":[{"id":"p","time":1678886500,"changes":[{"field":"feed","value":{
			  "item":"comment","verb":"remove","comment_id":"p_1_c","post_id":"p_1","parent_id":"p_1","created_time":1678886499,
			  "from":{"id":"u","name":"Ann Lee"}}}]}]}`,
			want: []webhook.Action{{
				Target: "p_1", Edge: "comments", ActionID: "p_1_c", Username: "Ann Lee", UserID: "u", Time: unix(1678886499), Deleted: true,
			}},
		},
		{
			name: "page reaction added, then removed",
			body: `{"object":"page","entry":[{"id":"p","time":1700000100,"changes":[
			  {"field":"feed","value":{"item":"reaction","verb":"add","reaction_type":"love","post_id":"p_2","parent_id":"p_2",
			    "from":{"id":"u-9","name":"Zoë Ng"},"created_time":1700000000}},
			  {"field":"feed","value":{"item":"reaction","verb":"remove","reaction_type":"love","post_id":"p_2",
			    "from":{"id":"u-9","name":"Zoë Ng"}}}]}]}`,
			want: []webhook.Action{
				{Target: "p_2", Edge: "reactions", ActionID: "u-9", Username: "Zoë Ng", UserID: "u-9", Time: unix(1700000000)},
				{Target: "p_2", Edge: "reactions", ActionID: "u-9", Username: "Zoë Ng", UserID: "u-9", Time: unix(1700000100), Deleted: true},
			},
		},
		{
			name: "numeric ids and millisecond entry time (older payloads)",
			body: `{"object":"page","entry":[{"id":"500158316696377","time":1361535969000,"changes":[{"field":"feed","value":{
			  "item":"comment","verb":"add","comment_id":"500158316696377_500219983356877_5405676","post_id":500219983356877,
			  "from":{"id":500158316696377,"name":"Page"},"message":"hi"}}]}]}`,
			want: []webhook.Action{{
				Target: "500219983356877", Edge: "comments", ActionID: "500158316696377_500219983356877_5405676",
				Username: "Page", UserID: "500158316696377", Text: "hi", Time: unix(1361535969),
			}},
		},
		{
			name: "several entries, other fields, items and messaging ignored",
			body: `{"object":"instagram","entry":[
			  {"id":"1","time":1700000000,"changes":[
			    {"field":"story_insights","value":{"media_id":"18023345989012587","exits":1,"reach":17}},
			    {"field":"live_comments","value":{"id":"lc","from":{"id":"u","username":"x"},"text":"t","media":{"id":"live"}}},
			    {"field":"comments","value":{"id":"c-a","from":{"id":"u-a","username":"a"},"text":"A","media":{"id":"m-a"}}}]},
			  {"id":"1","time":1700000005,"messaging":[{"sender":{"id":"s"},"recipient":{"id":"r"},"timestamp":1700000005000,"message":{"mid":"m","text":"dm"}}]},
			  {"id":"1","time":1700000009,"changes":[
			    {"field":"comments","value":{"id":"c-album","from":{"id":"u-b","username":"b"},"text":"album, no media id"}},
			    {"field":"mentions","value":{"media_id":"m-b","comment_id":"c-b"}}]}]}`,
			want: []webhook.Action{
				{Target: "m-a", Edge: "comments", ActionID: "c-a", Username: "a", UserID: "u-a", Text: "A", Time: unix(1700000000)},
				{Target: "m-b", Edge: "mentions", ActionID: "c-b", Time: unix(1700000009)},
			},
			wantIgnored: 4, // story_insights, live_comments, the messaging event, the comment without media
		},
		{
			name: "page feed items that are not comments or reactions, and fields under the wrong object",
			body: `{"object":"page","entry":[{"id":"p","time":1700000000,"changes":[
			  {"field":"feed","value":{"item":"post","verb":"add","post_id":"p_3","from":{"id":"p","name":"Brand"}}},
			  {"field":"feed","value":{"item":"like","verb":"add","user_id":1186329501459477}},
			  {"field":"comments","value":{"id":"c","from":{"id":"u","username":"x"},"media":{"id":"m"}}},
			  {"field":"feed","value":{"item":"reaction","verb":"add","post_id":"p_3"}}]}]}`,
			want:        nil,
			wantIgnored: 4, // post, like, an Instagram field on a Page, a reaction with no one behind it
		},
		{
			name: "feed under an instagram object is ignored",
			body: `{"object":"instagram","entry":[{"id":"1","time":1,"changes":[{"field":"feed","value":{"item":"comment","comment_id":"c","post_id":"p"}}]}]}`,
			want: nil, wantIgnored: 1,
		},
		{name: "empty entry list", body: `{"object":"page","entry":[]}`, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newHandler(sink)
			rec := postSigned(h, tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", rec.Code, rec.Body.String())
			}
			if tt.want == nil {
				if n := sink.callCount(); n != 0 {
					t.Fatalf("sink called %d times with %+v, want no call", n, sink.saved())
				}
			} else {
				if n := sink.callCount(); n != 1 {
					t.Fatalf("sink called %d times, want once", n)
				}
				if got := sink.saved(); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("actions:\n got %+v\nwant %+v", got, tt.want)
				}
			}
			want := webhook.Stats{
				Accepted: 1, Actions: int64(len(tt.want)), Ignored: tt.wantIgnored,
				NewActions: int64(len(uniqueKeys(tt.want))),
			}
			if got := h.Stats(); got != want {
				t.Fatalf("stats = %+v, want %+v", got, want)
			}
		})
	}
}

func uniqueKeys(actions []webhook.Action) map[key]bool {
	m := map[key]bool{}
	for _, a := range actions {
		m[key{a.Target, a.Edge, a.ActionID}] = true
	}
	return m
}

func TestParseTimes(t *testing.T) {
	tests := []struct {
		created string // JSON value of created_time; "" leaves it out
		want    time.Time
	}{
		{"", unix(1600000000)}, // entry time
		{"null", unix(1600000000)},
		{`""`, unix(1600000000)},
		{"1678886390", unix(1678886390)},
		{`"1678886390"`, unix(1678886390)},
		{"1678886390123", time.UnixMilli(1678886390123).UTC()},
		{`"2023-03-15T13:19:50+0000"`, time.Date(2023, 3, 15, 13, 19, 50, 0, time.UTC)},
		{`"2023-03-15T15:19:50+0200"`, time.Date(2023, 3, 15, 13, 19, 50, 0, time.UTC)},
		{`"2023-03-15T13:19:50Z"`, time.Date(2023, 3, 15, 13, 19, 50, 0, time.UTC)},
		{`"2023-03-15T13:19:50.5-07:00"`, time.Date(2023, 3, 15, 20, 19, 50, 5e8, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.created, func(t *testing.T) {
			created := ""
			if tt.created != "" {
				created = `,"created_time":` + tt.created
			}
			body := `{"object":"page","entry":[{"id":"p","time":1600000000,"changes":[{"field":"feed","value":{
			  "item":"comment","verb":"add","comment_id":"c","post_id":"p_1"` + created + `}}]}]}`
			actions, _, err := webhook.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(actions) != 1 || !actions[0].Time.Equal(tt.want) || actions[0].Time.Location() != time.UTC {
				t.Fatalf("actions = %+v, want one at %v UTC", actions, tt.want)
			}
		})
	}
}

func TestDuplicateDelivery(t *testing.T) {
	sink := &fakeSink{}
	h := newHandler(sink)
	for i := range 2 {
		if rec := postSigned(h, igCommentChanges); rec.Code != 200 {
			t.Fatalf("delivery %d: status %d", i, rec.Code)
		}
		if i == 0 && h.Stats().Duplicates != 0 {
			t.Fatal("first delivery counted as a duplicate")
		}
	}
	want := webhook.Stats{Accepted: 2, Actions: 2, NewActions: 1, Duplicates: 1}
	if got := h.Stats(); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
	if n := sink.callCount(); n != 2 {
		t.Fatalf("sink called %d times, want 2 (it decides what is new)", n)
	}

	// A delivery with one known and one new action is not a duplicate.
	mixed := strings.Replace(igCommentChanges, `"changes":[`,
		`"changes":[{"field":"mentions","value":{"media_id":"m","comment_id":"c"}},`, 1)
	if rec := postSigned(h, mixed); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	if got := h.Stats(); got.Duplicates != 1 || got.NewActions != 2 {
		t.Fatalf("after a partly new delivery: %+v", got)
	}
}

func TestBodyTooLarge(t *testing.T) {
	body := []byte(igCommentChanges)
	for _, knownLength := range []bool{true, false} {
		t.Run(fmt.Sprintf("content length known: %v", knownLength), func(t *testing.T) {
			sink := &fakeSink{}
			h := newHandler(sink)
			h.MaxBody = int64(len(body)) - 1
			counted := &countingReader{r: bytes.NewReader(body)}
			req := httptest.NewRequest(http.MethodPost, "/webhook", nil)
			req.Header.Set("X-Hub-Signature-256", sign(appSecret, body))
			req.Body = io.NopCloser(counted)
			req.ContentLength = int64(len(body))
			if !knownLength {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413", rec.Code)
			}
			if knownLength && counted.n != 0 {
				t.Fatalf("read %d bytes of a body announced too large", counted.n)
			}
			if !knownLength && counted.n > h.MaxBody+1 {
				t.Fatalf("read %d bytes past the limit of %d", counted.n, h.MaxBody)
			}
			if sink.callCount() != 0 {
				t.Fatal("sink called for an oversized body")
			}
			if got := h.Stats(); got != (webhook.Stats{TooLarge: 1}) {
				t.Fatalf("stats = %+v", got)
			}

			// Exactly at the limit is fine.
			h.MaxBody = int64(len(body))
			if rec := post(h, body, sign(appSecret, body)); rec.Code != 200 {
				t.Fatalf("body at the limit: status %d", rec.Code)
			}
		})
	}

	// The default limit is 1 MiB.
	big := `{"object":"page","entry":[],"pad":"` + strings.Repeat("x", int(webhook.DefaultMaxBody)) + `"}`
	if rec := postSigned(newHandler(&fakeSink{}), big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the default limit: status %d", rec.Code)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestMalformed(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty body", ``},
		{"not JSON", `object=page`},
		{"truncated", igCommentChanges[:len(igCommentChanges)-3]},
		{"entry is not a list", `{"object":"page","entry":"x"}`},
		{"top level is a string", `"page"`},
		{"comment id is an object", `{"object":"instagram","entry":[{"id":"1","time":1,"changes":[{"field":"comments","value":{"id":{"x":1},"media":{"id":"m"}}}]}]}`},
		{"comment text is a number", `{"object":"instagram","entry":[{"id":"1","time":1,"field":"comments","value":{"id":"c","text":5,"media":{"id":"m"}}}]}`},
		{"unparseable created_time", `{"object":"page","entry":[{"id":"p","time":1,"changes":[{"field":"feed","value":{"item":"comment","comment_id":"c","post_id":"p_1","created_time":"yesterday"}}]}]}`},
		{"entry time is a bool", `{"object":"page","entry":[{"id":"p","time":true,"changes":[]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &fakeSink{}
			h := newHandler(sink)
			rec := postSigned(h, tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", rec.Code)
			}
			if sink.callCount() != 0 {
				t.Fatal("sink called for a malformed delivery")
			}
			if got := h.Stats(); got != (webhook.Stats{Malformed: 1}) {
				t.Fatalf("stats = %+v", got)
			}
			if _, _, err := webhook.Parse([]byte(tt.body)); !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("Parse error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestSinkErrorAnswers500(t *testing.T) {
	sink := &fakeSink{err: errors.New("database is down")}
	h := newHandler(sink)
	rec := postSigned(h, igCommentChanges)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 so that Meta retries", rec.Code)
	}
	if sink.callCount() != 1 {
		t.Fatalf("sink called %d times", sink.callCount())
	}
	if got := h.Stats(); got != (webhook.Stats{Failed: 1}) {
		t.Fatalf("stats = %+v", got)
	}

	// Meta's retry, once the store is back, is stored.
	sink.err = nil
	if rec := postSigned(h, igCommentChanges); rec.Code != 200 {
		t.Fatalf("retry: status %d", rec.Code)
	}
	if got := h.Stats(); got.Accepted != 1 || got.NewActions != 1 || got.Duplicates != 0 {
		t.Fatalf("after retry: %+v", got)
	}
}

func TestNotConfigured(t *testing.T) {
	body := []byte(igCommentChanges)
	t.Run("no app secret", func(t *testing.T) {
		sink := &fakeSink{}
		h := newHandler(sink)
		h.AppSecret = secret.Value{}
		// Signed with the empty key, as a forger would if an empty secret were accepted.
		if rec := post(h, body, sign("", body)); rec.Code != http.StatusInternalServerError {
			t.Fatalf("status = %d, want 500", rec.Code)
		}
		if sink.callCount() != 0 {
			t.Fatal("sink called without an app secret")
		}
	})
	t.Run("no sink", func(t *testing.T) {
		h := newHandler(nil)
		if rec := post(h, body, sign(appSecret, body)); rec.Code != http.StatusInternalServerError {
			t.Fatalf("status = %d, want 500", rec.Code)
		}
	})
}

func TestOtherMethods(t *testing.T) {
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := httptest.NewRecorder()
		newHandler(&fakeSink{}).ServeHTTP(rec, httptest.NewRequest(m, "/webhook", strings.NewReader(igCommentChanges)))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%s: status %d, want 405", m, rec.Code)
		}
	}
}

func TestSignMatchesMeta(t *testing.T) {
	body := []byte(igCommentChanges)
	if got, want := webhook.Sign(secret.New(appSecret), body), sign(appSecret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// Meta signs the bytes as sent: re-encoding the JSON would break this.
	sink := &fakeSink{}
	if rec := post(newHandler(sink), body, webhook.Sign(secret.New(appSecret), body)); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestLogsHoldNoSecretsBodyOrPersonalData(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	sink := &fakeSink{}
	h := newHandler(sink)
	h.Logger = zap.New(core)

	get := func(token string) {
		q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {token}, "hub.challenge": {"42"}}
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/webhook?"+q.Encode(), nil))
	}
	get(verifyToken)
	get("guess-" + verifyToken)
	post(h, []byte(igCommentChanges), sign("other", []byte(igCommentChanges)))
	postSigned(h, igCommentChanges)
	postSigned(h, strings.Replace(igCommentChanges, `"time":1520383571`, `"time":"jane.doe Love it"`, 1))
	sink.err = errors.New("store down")
	postSigned(h, strings.Replace(igCommentChanges, "17865799348089039", "1", 1))

	if logs.Len() < 6 {
		t.Fatalf("only %d log entries; every request should log", logs.Len())
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	var all strings.Builder
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(buf.Bytes())
	}
	for _, leak := range []string{appSecret, verifyToken, "jane.doe", "Love it", "CODE42", "17887498072083520"} {
		if strings.Contains(all.String(), leak) {
			t.Fatalf("log holds %q:\n%s", leak, all.String())
		}
	}
	// The logs still say what happened.
	for _, msg := range []string{"webhook handshake accepted", "webhook handshake refused", "webhook signature refused",
		"webhook delivery stored", "webhook payload malformed", "webhook actions not stored"} {
		if logs.FilterMessage(msg).Len() == 0 {
			t.Fatalf("no %q log entry", msg)
		}
	}
}

func TestConcurrentDeliveriesCountOnce(t *testing.T) {
	sink := &fakeSink{}
	h := newHandler(sink)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { postSigned(h, igCommentChanges) })
	}
	wg.Wait()
	want := webhook.Stats{Accepted: 20, Actions: 20, NewActions: 1, Duplicates: 19}
	if got := h.Stats(); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
}

// A NUL in a comment (JSON "\u0000") cannot be stored in PostgreSQL text; it
// would fail the delivery and every redelivery, losing its other actions.
func TestParseReplacesNUL(t *testing.T) {
	body := `{"object":"instagram","entry":[{"id":"1","time":1,"field":"comments",
	  "value":{"id":"c\u0000","text":"nice\u0000 CODE42","from":{"id":"u","username":"maya\u0000"},"media":{"id":"m"}}}]}`
	actions, _, err := webhook.Parse([]byte(body))
	want := []webhook.Action{{Target: "m", Edge: "comments", ActionID: "c\uFFFD", Username: "maya\uFFFD", UserID: "u",
		Text: "nice\uFFFD CODE42", Time: unix(1)}}
	if err != nil || !reflect.DeepEqual(actions, want) {
		t.Fatalf("Parse = %+v, %v; want %+v", actions, err, want)
	}
}
