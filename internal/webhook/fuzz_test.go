package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/webhook"
)

// webhookSeeds are deliveries of every shape Parse knows, and hostile ones;
// they run as ordinary tests under `go test` and seed the fuzzers.
var webhookSeeds = []string{
	igCommentChanges,
	`{"object":"instagram","entry":[{"id":"1","time":1716000000,"field":"comments","value":{"id":"c-1","from":{"id":"u-1","username":"Bob"},"text":"nice","media":{"id":"m-1"}}}]}`,
	`[{"entry":[{"changes":[{"field":"mentions","value":{"comment_id":"17894227972186120","media_id":"17918195224117851"}}],"id":"17841405726653026","time":1520622968}],"object":"instagram"}]`,
	`{"object":"instagram","entry":[{"id":"1","time":1520622968,"field":"mentions","value":{"media_id":17918195224117851}}]}`,
	`{"object":"page","entry":[{"id":"p","time":1678886400,"changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"p_1_c","post_id":"p_1","created_time":"2023-03-15T13:19:50+0000","message":"hi","from":{"id":"u","name":"Ann"}}}]}]}`,
	`{"object":"page","entry":[{"id":"p","time":"1678886400","changes":[{"field":"feed","value":{"item":"reaction","verb":"remove","reaction_type":"like","post_id":"p_1","from":{"id":"u"},"created_time":1678886400123}}]}]}`,
	`{"object":"page","entry":[{"id":"p","time":1,"changes":[{"field":"feed","value":{"item":"status","post_id":"p_1"}},{"field":"feed","value":null},{"field":"ratings","value":{}}]}],"messaging":[{}]}`,
	`{"object":"instagram","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"1"}},{}]}]}`,
	`{"object":"instagram","entry":[{"id":"1","time":-1,"changes":[]}]}`,
	`{"object":"instagram","entry":[{"id":"1","time":9223372036854775807,"field":"comments","value":{"id":"c","media":{"id":"m"},"created_time":"9999-12-31T23:59:59.999999999-23:59"}}]}`,
	`{"object":"instagram","entry":[{"id":1e999,"time":1.5,"changes":[]}]}`,
	`{"object":"instagram","entry":[{"id":"1","time":1,"field":"comments","value":{"id":{"x":1},"media":{"id":"m"}}}]}`,
	`{"object":"instagram","entry":[{"id":"1","time":1,"field":"comments","value":{"id":"c\u0000","text":"a\u0000b\ud800","from":{"username":"x\u0000"},"media":{"id":"m"}}}]}`,
	"{\"object\":\"instagram\",\"entry\":[{\"id\":\"1\",\"field\":\"comments\",\"value\":{\"id\":\"c\",\"text\":\"caf\xe9\",\"media\":{\"id\":\"m\"}}}]}",
	`{"Object":"page","ENTRY":[{"id":"p","Changes":[{"FIELD":"feed","value":{"item":"comment","comment_id":"c","post_id":"p_1"}}]}]}`,
	`{"object":"page","entry":[{"changes":[{"field":"feed","value":{"item":"comment","post_id":"p_1","comment_id":"c","from":{"id":[1]}}}]}]}`,
	`{"object":"page","entry":[{"changes":[{"field":"feed","value":"not an object"}]}]}`,
	`[null,{},[]]`,
	`null`,
	`{}`,
	`[]`,
	`"page"`,
	``,
	"\xef\xbb\xbf{}",
	`{"object":"page","entry":[]} trailing`,
	`{"object":"page","entry":[` + strings.Repeat(`{"changes":[`, 50) + `]}]}`,
}

// FuzzWebhookParse: Parse never panics; it refuses with ErrMalformed and a
// short message, or returns only actions a Sink can store: both ids set, a
// known edge, UTC times, valid UTF-8 without NUL.
func FuzzWebhookParse(f *testing.F) {
	for _, s := range webhookSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		actions, ignored, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) || actions != nil || ignored != 0 {
				t.Fatalf("error %v with %d actions, %d ignored", err, len(actions), ignored)
			}
			// Errors never quote the payload: their size does not grow with it.
			if msg := err.Error(); len(msg) > 300 || !utf8.ValidString(msg) {
				t.Fatalf("error message of %d bytes: %q", len(msg), msg)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		if ignored < 0 {
			t.Fatalf("ignored = %d", ignored)
		}
		for i, a := range actions {
			checkAction(t, i, a)
		}
		again, ignored2, err := webhook.Parse(body)
		if err != nil || ignored2 != ignored || !reflect.DeepEqual(again, actions) {
			t.Fatalf("Parse is not deterministic: %v", err)
		}
	})
}

func checkAction(t *testing.T, i int, a webhook.Action) {
	t.Helper()
	if a.Target == "" || a.ActionID == "" {
		t.Fatalf("action %d lacks an id: %+v", i, a)
	}
	switch a.Edge {
	case webhook.EdgeComments, webhook.EdgeReactions:
	case webhook.EdgeMentions:
		if a.Deleted {
			t.Fatalf("action %d: a deleted mention: %+v", i, a)
		}
	default:
		t.Fatalf("action %d: edge %q", i, a.Edge)
	}
	if !a.Time.IsZero() && a.Time.Location() != time.UTC {
		t.Fatalf("action %d: time %v is not UTC", i, a.Time)
	}
	for _, s := range []string{a.Target, a.ActionID, a.Username, a.UserID, a.Text} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Fatalf("action %d: %q is not storable text (invalid UTF-8 or NUL)", i, s)
		}
	}
}

// fuzzMaxBody keeps the body limit reachable by the fuzzer.
const fuzzMaxBody = 4096

// FuzzWebhookSignature posts through the Handler: a body signed with the app
// secret is taken (200, or 400 when it is not a payload) and its actions,
// exactly Parse's, reach the Sink; an oversized body is 413; any other
// signature, and any change of the signed body, is 401 and reaches nothing.
func FuzzWebhookSignature(f *testing.F) {
	good := sign(appSecret, []byte(igCommentChanges))
	f.Add([]byte(igCommentChanges), good, uint16(0), "")
	f.Add([]byte(igCommentChanges), strings.ToUpper(good[:7])+good[7:], uint16(7), "")
	f.Add([]byte(igCommentChanges), "sha256="+strings.ToUpper(good[7:]), uint16(100), "")
	f.Add([]byte(igCommentChanges), good[:len(good)-1], uint16(3), "other-secret")
	f.Add([]byte(igCommentChanges), good+"00", uint16(9), "")
	f.Add([]byte(igCommentChanges), " "+good, uint16(9), "")
	f.Add([]byte(`{"object":"page","entry":[]}`), "sha256=", uint16(1), "k")
	f.Add([]byte(`not json`), "sha1=0000", uint16(2), "\x00\xff")
	f.Add([]byte{}, "", uint16(0), "")
	f.Add(bytes.Repeat([]byte("x"), fuzzMaxBody+1), good, uint16(5), "")
	f.Fuzz(func(t *testing.T, body []byte, header string, pos uint16, key string) {
		if key == "" {
			key = appSecret
		}
		signed := sign(key, body)
		if got := webhook.Sign(secret.New(key), body); got != signed {
			t.Fatalf("Sign = %q, want %q", got, signed)
		}
		want, _, perr := webhook.Parse(body)

		deliver := func(what string, body []byte, sig string, valid bool) {
			t.Helper()
			sink := &fakeSink{}
			h := &webhook.Handler{AppSecret: secret.New(key), Sink: sink, MaxBody: fuzzMaxBody}
			rec := post(h, body, sig)
			st := h.Stats()
			var wantStatus int
			var wantStats webhook.Stats
			switch {
			case len(body) > fuzzMaxBody:
				wantStatus, wantStats = http.StatusRequestEntityTooLarge, webhook.Stats{TooLarge: 1}
			case !valid:
				wantStatus, wantStats = http.StatusUnauthorized, webhook.Stats{Refused: 1}
			case perr != nil:
				wantStatus, wantStats = http.StatusBadRequest, webhook.Stats{Malformed: 1}
			default:
				wantStatus = http.StatusOK
				wantStats = webhook.Stats{Accepted: 1, Actions: int64(len(want)), NewActions: st.NewActions,
					Ignored: st.Ignored, Duplicates: st.Duplicates}
			}
			if rec.Code != wantStatus || st != wantStats {
				t.Fatalf("%s: status %d, stats %+v; want %d, %+v", what, rec.Code, st, wantStatus, wantStats)
			}
			if wantStatus != http.StatusOK || len(want) == 0 {
				if sink.callCount() != 0 {
					t.Fatalf("%s: the sink was called", what)
				}
				return
			}
			if sink.callCount() != 1 || !reflect.DeepEqual(sink.saved(), want) {
				t.Fatalf("%s: the sink got %+v in %d calls, want %+v", what, sink.saved(), sink.callCount(), want)
			}
		}

		deliver("signed", body, signed, true)
		deliver("fuzzed header", body, header, sameSignature(header, signed))
		deliver("other secret", body, sign(key+"x", body), false)
		deliver("appended byte", append(bytes.Clone(body), byte(pos)), signed, false)
		if len(body) > 0 {
			changed := bytes.Clone(body)
			changed[int(pos)%len(changed)] ^= 1 << (pos % 8)
			deliver("changed byte", changed, signed, false)
			deliver("truncated", body[:len(body)-1], signed, false)
		}
		hexPart := []byte(signed[len("sha256="):])
		i := int(pos) % len(hexPart)
		hexPart[i] = "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", hexPart[i])+1+int(pos>>8)%15)%16]
		deliver("changed signature", body, "sha256="+string(hexPart), false)

		// Without an app secret nothing is taken, whatever the signature.
		sink := &fakeSink{}
		h := &webhook.Handler{Sink: sink, MaxBody: fuzzMaxBody}
		if rec := post(h, body, header); rec.Code == http.StatusOK || sink.callCount() != 0 {
			t.Fatalf("unconfigured handler answered %d, %d sink calls", rec.Code, sink.callCount())
		}
	})
}

// sameSignature reports whether header carries the MAC of signed: the
// "sha256=" prefix exactly, hex digits in either case.
func sameSignature(header, signed string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexSig) != len(signed)-len("sha256=") {
		return false
	}
	for i := range len(hexSig) {
		c := hexSig[i]
		if 'A' <= c && c <= 'F' {
			c += 'a' - 'A'
		}
		if c != signed[len("sha256=")+i] {
			return false
		}
	}
	return true
}

// FuzzWebhookHandshake: a GET is answered 200, echoing exactly the challenge,
// only for hub.mode=subscribe and the configured verify token; anything else
// is 403 and echoes nothing.
func FuzzWebhookHandshake(f *testing.F) {
	ok := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}}
	f.Add(ok.Encode(), verifyToken)
	f.Add(ok.Encode(), "")
	f.Add(ok.Encode(), verifyToken+"x")
	f.Add("hub.mode=subscribe&hub.verify_token=&hub.challenge=x", "")
	f.Add("hub.mode=subscribe&hub.mode=unsubscribe&hub.verify_token="+verifyToken+"&hub.challenge=%3Cscript%3E", verifyToken)
	f.Add("hub.mode=subscribe;hub.verify_token="+verifyToken+"&hub.challenge=%zz", verifyToken)
	f.Add("hub.mode=%73ubscribe&hub.verify_token="+verifyToken+"&hub.challenge=%00%ff", verifyToken)
	f.Add("", "")
	f.Fuzz(func(t *testing.T, rawQuery, configured string) {
		sink := &fakeSink{}
		h := &webhook.Handler{AppSecret: secret.New(appSecret), VerifyToken: secret.New(configured), Sink: sink}
		req := httptest.NewRequest(http.MethodGet, "/webhook", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		q, _ := url.ParseQuery(rawQuery) // what a lenient reading finds
		accept := q.Get("hub.mode") == "subscribe" && configured != "" && q.Get("hub.verify_token") == configured
		switch {
		case accept && (rec.Code != http.StatusOK || rec.Body.String() != q.Get("hub.challenge")):
			t.Fatalf("accepted handshake: %d %q, want 200 %q", rec.Code, rec.Body.String(), q.Get("hub.challenge"))
		case !accept && (rec.Code != http.StatusForbidden || rec.Body.String() != "forbidden\n"):
			t.Fatalf("refused handshake: %d %q, want 403 forbidden", rec.Code, rec.Body.String())
		}
		if sink.callCount() != 0 || h.Stats() != (webhook.Stats{}) {
			t.Fatalf("a handshake reached the sink or the counters: %+v", h.Stats())
		}
	})
}
