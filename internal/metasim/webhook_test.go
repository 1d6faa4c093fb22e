package metasim_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/metasim"
)

// whBody is this test's strict reading of a webhook POST body.
type whBody struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Time    int64  `json:"time"`
		Changes []struct {
			Field string          `json:"field"`
			Value json.RawMessage `json:"value"`
		} `json:"changes"`
		Field string          `json:"field"`
		Value json.RawMessage `json:"value"`
	} `json:"entry"`
}

// whGot is one event as received.
type whGot struct {
	Object, EntryID, Field string
	Flat                   bool // Instagram-Login shape: field/value on the entry
	Value                  json.RawMessage
	Post                   int // index of the POST that carried it
	At                     time.Time
}

type whValue struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	From struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
	} `json:"from"`
	Media struct {
		ID               string `json:"id"`
		MediaProductType string `json:"media_product_type"`
	} `json:"media"`
	MediaID      string `json:"media_id"`
	CommentID    string `json:"comment_id"`
	Item         string `json:"item"`
	Verb         string `json:"verb"`
	PostID       string `json:"post_id"`
	ParentID     string `json:"parent_id"`
	Message      string `json:"message"`
	ReactionType string `json:"reaction_type"`
	CreatedTime  int64  `json:"created_time"`
}

func (g whGot) value(t *testing.T) whValue {
	t.Helper()
	var v whValue
	if err := json.Unmarshal(g.Value, &v); err != nil {
		t.Fatalf("value %s: %v", g.Value, err)
	}
	return v
}

// receiver is a webhook endpoint that checks Meta's handshake and the
// X-Hub-Signature-256 of every POST itself.
type receiver struct {
	t      *testing.T
	secret string
	token  string
	srv    *httptest.Server

	mu         sync.Mutex
	handshakes int
	echo       func(challenge string) string // what the GET answers; default: the challenge
	status     func(n int) int               // status for the n-th POST (0-based); default 200
	posts      int
	bodies     [][]byte
	events     []whGot
	problems   []string
}

func newReceiver(t *testing.T, secret, token string) *receiver {
	rc := &receiver{t: t, secret: secret, token: token}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		if q.Get("hub.mode") != "subscribe" || q.Get("hub.verify_token") != rc.token || q.Get("hub.challenge") == "" {
			http.Error(w, "bad verification request", http.StatusForbidden)
			return
		}
		rc.handshakes++
		answer := q.Get("hub.challenge")
		if rc.echo != nil {
			answer = rc.echo(answer)
		}
		io.WriteString(w, answer)
		return
	}
	body, _ := io.ReadAll(r.Body)
	n := rc.posts
	rc.posts++
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		rc.problems = append(rc.problems, "content type "+ct)
	}
	m := hmac.New(sha256.New, []byte(rc.secret))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := r.Header.Get("X-Hub-Signature-256"); !hmac.Equal([]byte(got), []byte(want)) {
		rc.problems = append(rc.problems, fmt.Sprintf("bad signature %q", got))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if rc.status != nil {
		if st := rc.status(n); st != http.StatusOK {
			w.WriteHeader(st)
			return
		}
	}
	var b whBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || (b.Object != "instagram" && b.Object != "page") || len(b.Entry) == 0 {
		rc.problems = append(rc.problems, fmt.Sprintf("bad body (%v): %s", err, body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.bodies = append(rc.bodies, body)
	post := len(rc.bodies) - 1
	now := time.Now()
	for _, e := range b.Entry {
		if e.ID == "" || e.Time == 0 {
			rc.problems = append(rc.problems, "entry without id or time: "+string(body))
		}
		if e.Field != "" {
			if len(e.Changes) > 0 || b.Object != "instagram" {
				rc.problems = append(rc.problems, "flat entry with changes or not instagram: "+string(body))
			}
			rc.events = append(rc.events, whGot{b.Object, e.ID, e.Field, true, e.Value, post, now})
			continue
		}
		if len(e.Changes) == 0 {
			rc.problems = append(rc.problems, "entry without changes: "+string(body))
		}
		for _, c := range e.Changes {
			rc.events = append(rc.events, whGot{b.Object, e.ID, c.Field, false, c.Value, post, now})
		}
	}
}

func (rc *receiver) got() []whGot {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.problems) > 0 {
		rc.t.Fatalf("receiver problems: %v", rc.problems)
	}
	return append([]whGot(nil), rc.events...)
}

func (rc *receiver) numPosts() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.posts
}

func (rc *receiver) opts() metasim.WebhookOptions {
	return metasim.WebhookOptions{URL: rc.srv.URL + "/webhooks/meta", VerifyToken: rc.token, Client: rc.srv.Client()}
}

func subscribe(t *testing.T, e *env, o metasim.WebhookOptions) {
	t.Helper()
	if err := e.sim.Subscribe(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sim.Close() })
}

func flush(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.sim.FlushWebhooks(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, e.sim.WebhookStats())
	}
}

func TestWebhookHandshake(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "verify-me")

	subscribe(t, e, rc.opts())
	if rc.handshakes != 1 {
		t.Fatalf("handshakes %d", rc.handshakes)
	}
	if rc.numPosts() != 0 {
		t.Fatal("POSTs before any action")
	}

	// A receiver that answers something else than the challenge.
	rc.mu.Lock()
	rc.echo = func(c string) string { return c + "x" }
	rc.mu.Unlock()
	if err := e.sim.Subscribe(rc.opts()); err == nil || !strings.Contains(err.Error(), "challenge") {
		t.Fatalf("wrong echo accepted: %v", err)
	}
	// A wrong verify token: the receiver refuses.
	o := rc.opts()
	o.VerifyToken = "other"
	if err := e.sim.Subscribe(o); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused handshake accepted: %v", err)
	}
	o = rc.opts()
	o.Shape = "atom"
	if err := e.sim.Subscribe(o); err == nil {
		t.Fatal("unknown shape accepted")
	}
	// The first subscription is still in force.
	e.sim.GenerateClaims(5, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1}})
	flush(t, e)
	if len(rc.got()) != 5 {
		t.Fatalf("got %d events, want 5", len(rc.got()))
	}
}

func TestWebhookEventsMatchTheWorld(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	subscribe(t, e, rc.opts())

	claims := e.sim.GenerateClaims(400, metasim.ClaimOptions{FraudRate: 0.25, CodeRate: 0.5})
	flush(t, e)
	got := rc.got()

	users := map[string]metasim.User{}
	for _, u := range e.world.Users {
		users[u.Ref] = u
	}
	brands := map[string]metasim.Brand{}
	for _, b := range e.world.Brands {
		brands[b.Tenant] = b
	}
	// Index what arrived.
	igComments := map[string]whValue{} // media id + "/" + username
	mentions := map[string]bool{}      // ig user id + "/" + media id
	feed := map[string]whValue{}       // item/post id/from id
	for _, g := range got {
		v := g.value(t)
		switch {
		case g.Object == "instagram" && g.Field == "comments":
			if v.ID == "" || v.Media.MediaProductType != "FEED" || v.From.ID == "" {
				t.Fatalf("comments value %s", g.Value)
			}
			igComments[g.EntryID+"/"+v.Media.ID+"/"+v.From.Username] = v
		case g.Object == "instagram" && g.Field == "mentions":
			if v.MediaID == "" {
				t.Fatalf("mentions value %s", g.Value)
			}
			mentions[g.EntryID+"/"+v.MediaID] = true
		case g.Object == "page" && g.Field == "feed":
			if v.Verb != "add" || v.PostID == "" || v.CreatedTime == 0 || v.From.Name == "" || !strings.HasPrefix(v.PostID, g.EntryID+"_") {
				t.Fatalf("feed value %s", g.Value)
			}
			feed[v.Item+"/"+v.PostID+"/"+v.From.ID] = v
		default:
			t.Fatalf("unexpected event %s %s", g.Object, g.Field)
		}
	}
	kinds := map[string]int{}
	for _, gc := range claims {
		c, err := strictParse(gc.Line)
		if err != nil {
			t.Fatal(err)
		}
		u, b := users[c.User], brands[c.Tenant]
		if !gc.Genuine {
			continue
		}
		kinds[c.Kind]++
		switch c.Kind {
		case "ig_comment":
			v, ok := igComments[b.IGUserID+"/"+c.Target+"/"+u.IGUsername]
			if !ok || v.From.ID != u.IGUserID || (c.Code != "" && !strings.Contains(v.Text, c.Code)) {
				t.Errorf("genuine ig_comment %s: no matching comments event (%+v)", gc.Key, v)
			}
		case "ig_mention":
			if !mentions[b.IGUserID+"/"+c.Target] {
				t.Errorf("genuine ig_mention %s: no mentions event for media %s", gc.Key, c.Target)
			}
		case "fb_comment":
			v, ok := feed["comment/"+c.Target+"/"+u.FBUserID]
			if !ok || v.From.Name != u.FBName || v.CommentID == "" || v.ParentID != c.Target || (c.Code != "" && !strings.Contains(v.Message, c.Code)) {
				t.Errorf("genuine fb_comment %s: no matching feed event (%+v)", gc.Key, v)
			}
			if v.CreatedTime < c.Since.Unix() {
				t.Errorf("fb_comment %s: created_time %d before since", gc.Key, v.CreatedTime)
			}
		case "fb_reaction":
			v, ok := feed["reaction/"+c.Target+"/"+u.FBUserID]
			if !ok || v.ReactionType == "" || v.ReactionType != strings.ToLower(v.ReactionType) {
				t.Errorf("genuine fb_reaction %s: no matching feed event (%+v)", gc.Key, v)
			}
		}
	}
	for _, k := range []string{"ig_comment", "ig_mention", "fb_comment", "fb_reaction"} {
		if kinds[k] == 0 {
			t.Fatalf("no genuine %s claims: %v", k, kinds)
		}
	}

	// Stats and records agree with what arrived.
	st := e.sim.WebhookStats()
	recs := e.sim.WebhookEvents()
	if st.Events != len(got) || st.Delivered != len(got) || st.Dropped+st.Failed+st.Pending+st.Canceled+st.Duplicates != 0 || len(recs) != len(got) {
		t.Fatalf("stats %+v, %d records, %d received", st, len(recs), len(got))
	}
	tagged := 0
	for _, r := range recs {
		if r.State != metasim.WebhookDelivered || r.Copies != 1 {
			t.Fatalf("record %+v", r)
		}
		if r.Claim != "" {
			tagged++
		}
	}
	if tagged < len(recs)/2 {
		t.Fatalf("only %d of %d records name their claim", tagged, len(recs))
	}

	// Edits and removals: Page feed "edited" and "remove"; Instagram nothing.
	var fbComment, igComment string
	for _, r := range recs {
		if r.Item == "comment" && fbComment == "" {
			fbComment = r.CommentID
		}
		if r.Field == "comments" && igComment == "" {
			igComment = r.CommentID
		}
	}
	before := len(got)
	for _, err := range []error{
		e.sim.EditComment(fbComment, "edited text"), e.sim.DeleteComment(fbComment),
		e.sim.EditComment(igComment, "edited ig"), e.sim.DeleteComment(igComment),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A comment on brand media mentioning the brand: comments and mentions.
	b := e.brand("brand-01")
	cid, err := e.sim.AddIGComment(b.MediaIDs[0], "u-7", "love it @"+b.IGUsername)
	if err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	got = rc.got()[before:]
	if len(got) != 4 {
		t.Fatalf("after edits: %d events, want 4", len(got))
	}
	if v := got[0].value(t); v.Verb != "edited" || v.CommentID != fbComment || v.Message != "edited text" {
		t.Fatalf("edit event %s", got[0].Value)
	}
	if v := got[1].value(t); v.Verb != "remove" || v.CommentID != fbComment || v.Item != "comment" {
		t.Fatalf("remove event %s", got[1].Value)
	}
	if v := got[2].value(t); got[2].Field != "comments" || v.ID != cid || v.From.Username != users["u-7"].IGUsername || got[2].EntryID != b.IGUserID {
		t.Fatalf("comment event %s", got[2].Value)
	}
	if v := got[3].value(t); got[3].Field != "mentions" || v.CommentID != cid || v.MediaID != b.MediaIDs[0] || got[3].EntryID != b.IGUserID {
		t.Fatalf("comment mention event %s", got[3].Value)
	}
}

func TestWebhookDoesNotChangeTheWorld(t *testing.T) {
	plain := newEnv(t, metasim.Config{})
	hooked := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	o := rc.opts()
	o.DropRate, o.Duplicates = 0.3, 0.3
	subscribe(t, hooked, o)
	a := plain.sim.GenerateClaims(200, metasim.ClaimOptions{})
	b := hooked.sim.GenerateClaims(200, metasim.ClaimOptions{})
	if len(a) != len(b) {
		t.Fatal("claim counts differ")
	}
	for i := range a {
		if !bytes.Equal(a[i].Line, b[i].Line) {
			t.Fatalf("claim %d differs with a subscription:\n%s\n%s", i, a[i].Line, b[i].Line)
		}
	}
}

func TestWebhookDuplicates(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	o := rc.opts()
	o.Duplicates = 1
	subscribe(t, e, o)
	e.sim.GenerateClaims(40, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1, "fb_comment": 1}})
	flush(t, e)
	got := rc.got()
	seen := map[string]int{}
	for _, g := range got {
		seen[string(g.Value)]++
	}
	st := e.sim.WebhookStats()
	if st.Events == 0 || st.Delivered != st.Events || st.Duplicates != st.Events || len(got) != 2*st.Events || len(seen) != st.Events {
		t.Fatalf("stats %+v, %d received, %d distinct", st, len(got), len(seen))
	}
	for v, n := range seen {
		if n != 2 {
			t.Fatalf("%s delivered %d times", v, n)
		}
	}
	for _, r := range e.sim.WebhookEvents() {
		if r.Copies != 2 {
			t.Fatalf("record %+v", r)
		}
	}
	// The copy is the same POST body (same signature), sent again.
	rc.mu.Lock()
	defer rc.mu.Unlock()
	bodies := map[string]int{}
	for _, b := range rc.bodies {
		bodies[string(b)]++
	}
	for b, n := range bodies {
		if n != 2 {
			t.Fatalf("body sent %d times: %s", n, b)
		}
	}
}

func TestWebhookDrops(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	o := rc.opts()
	o.DropRate = 1
	subscribe(t, e, o)
	e.sim.GenerateClaims(50, metasim.ClaimOptions{})
	flush(t, e)
	st := e.sim.WebhookStats()
	if rc.numPosts() != 0 || st.Events == 0 || st.Dropped != st.Events || st.Delivered != 0 {
		t.Fatalf("DropRate 1: %d POSTs, stats %+v", rc.numPosts(), st)
	}

	// Half dropped: exactly the delivered records arrive, and the claims
	// whose events were all dropped can be told.
	e2 := newEnv(t, metasim.Config{})
	rc2 := newReceiver(t, testAppSecret, "tok")
	o = rc2.opts()
	o.DropRate = 0.5
	subscribe(t, e2, o)
	claims := e2.sim.GenerateClaims(200, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1}})
	flush(t, e2)
	got := map[string]bool{}
	for _, g := range rc2.got() {
		got[g.value(t).ID] = true
	}
	withHook := map[string]bool{}
	dropped := 0
	for _, r := range e2.sim.WebhookEvents() {
		if got[r.CommentID] != (r.State == metasim.WebhookDelivered) {
			t.Fatalf("record %+v, received %v", r, got[r.CommentID])
		}
		if r.State == metasim.WebhookDropped {
			dropped++
		} else {
			withHook[r.Claim] = true
		}
	}
	st = e2.sim.WebhookStats()
	if dropped < 60 || dropped > 140 || st.Dropped != dropped || st.Delivered != len(got) {
		t.Fatalf("dropped %d, stats %+v, received %d", dropped, st, len(got))
	}
	missing := 0
	for _, c := range claims {
		if !withHook[c.Tenant+"/"+c.Key] {
			missing++
		}
	}
	if missing != dropped {
		t.Fatalf("%d claims without a webhook, %d events dropped", missing, dropped)
	}
}

func TestWebhookRetriesThenFails(t *testing.T) {
	defer metasim.SetWebhookBackoff(5*time.Millisecond, 20*time.Millisecond)()
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	rc.status = func(int) int { return http.StatusInternalServerError }
	subscribe(t, e, rc.opts())
	b := e.brand("brand-02")
	if _, err := e.sim.AddIGComment(b.MediaIDs[0], "u-3", "nice"); err != nil {
		t.Fatal(err)
	}
	flush(t, e)
	st := e.sim.WebhookStats()
	if rc.numPosts() != 5 || st.Events != 1 || st.Failed != 1 || st.Retries != 4 || st.Delivered != 0 || st.Posts != 5 {
		t.Fatalf("%d POSTs, stats %+v", rc.numPosts(), st)
	}
	if r := e.sim.WebhookEvents(); r[0].State != metasim.WebhookFailed {
		t.Fatalf("record %+v", r[0])
	}

	// A receiver that recovers after two failures.
	e2 := newEnv(t, metasim.Config{})
	rc2 := newReceiver(t, testAppSecret, "tok")
	rc2.status = func(n int) int {
		if n < 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	subscribe(t, e2, rc2.opts())
	e2.sim.AddIGComment(b.MediaIDs[0], "u-3", "nice")
	flush(t, e2)
	if st := e2.sim.WebhookStats(); st.Delivered != 1 || st.Retries != 2 || st.Failed != 0 || len(rc2.got()) != 1 {
		t.Fatalf("recovering receiver: stats %+v", st)
	}
}

func TestWebhookShapesAndBatches(t *testing.T) {
	for _, shape := range []string{"facebook", "instagram", "mixed"} {
		t.Run(shape, func(t *testing.T) {
			e := newEnv(t, metasim.Config{})
			rc := newReceiver(t, testAppSecret, "tok")
			o := rc.opts()
			o.Shape = shape
			subscribe(t, e, o)
			e.sim.GenerateClaims(60, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1, "fb_reaction": 1}})
			flush(t, e)
			flat, nested := 0, 0
			for _, g := range rc.got() {
				switch {
				case g.Object == "page" && g.Flat:
					t.Fatal("flat Page entry")
				case g.Object == "page":
				case g.Flat:
					flat++
				default:
					nested++
				}
			}
			switch {
			case shape == "facebook" && (flat != 0 || nested == 0),
				shape == "instagram" && (flat == 0 || nested != 0),
				shape == "mixed" && (flat == 0 || nested == 0):
				t.Fatalf("shape %s: %d flat, %d nested Instagram events", shape, flat, nested)
			}
		})
	}

	// MaxBatch: events piled up behind a slow first POST share later POSTs.
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	rc.status = func(n int) int {
		if n == 0 {
			time.Sleep(200 * time.Millisecond)
		}
		return http.StatusOK
	}
	o := rc.opts()
	o.MaxBatch = 10
	subscribe(t, e, o)
	e.sim.GenerateClaims(60, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1}})
	flush(t, e)
	got := rc.got()
	st := e.sim.WebhookStats()
	perPost := map[int]int{}
	for _, g := range got {
		perPost[g.Post]++
	}
	maxN := 0
	for _, n := range perPost {
		maxN = max(maxN, n)
	}
	if len(got) != st.Events || maxN < 2 || maxN > 10 || st.Posts >= st.Events {
		t.Fatalf("batches: %d events in %d POSTs, largest %d, stats %+v", len(got), len(perPost), maxN, st)
	}
}

func TestWebhookDelayTenantsAndUnsubscribe(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	o := rc.opts()
	o.Delay = 300 * time.Millisecond
	o.Tenants = []string{"brand-02"}
	subscribe(t, e, o)
	start := time.Now()
	e.sim.GenerateClaims(60, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1, "fb_comment": 1}})
	if n := rc.numPosts(); n != 0 {
		t.Fatalf("%d POSTs before the delay", n)
	}
	flush(t, e)
	b := e.brand("brand-02")
	got := rc.got()
	if len(got) == 0 {
		t.Fatal("nothing delivered")
	}
	for _, g := range got {
		if g.At.Sub(start) < o.Delay {
			t.Fatalf("delivered after %v, delay %v", g.At.Sub(start), o.Delay)
		}
		if g.EntryID != b.IGUserID && g.EntryID != b.PageID {
			t.Fatalf("event for another tenant: %s", g.EntryID)
		}
	}

	// Unsubscribe cancels what is queued and stops new events.
	e.sim.GenerateClaims(20, metasim.ClaimOptions{FraudRate: -1, Tenants: []string{"brand-02"}, Kinds: map[string]float64{"ig_comment": 1}})
	e.sim.Unsubscribe()
	st := e.sim.WebhookStats()
	if st.Canceled == 0 || st.Pending != 0 {
		t.Fatalf("after Unsubscribe: %+v", st)
	}
	n := rc.numPosts()
	e.sim.GenerateClaims(20, metasim.ClaimOptions{FraudRate: -1, Tenants: []string{"brand-02"}})
	time.Sleep(400 * time.Millisecond)
	if rc.numPosts() != n || e.sim.WebhookStats() != st {
		t.Fatal("deliveries after Unsubscribe")
	}
	if err := e.sim.FlushWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookSideEndpoint(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	rc := newReceiver(t, testAppSecret, "tok")
	subscribe(t, e, rc.opts())
	e.sim.GenerateClaims(10, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"fb_reaction": 1}})
	flush(t, e)
	resp, err := http.Get(e.srv.URL + "/_sim/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Subscribed bool                 `json:"subscribed"`
		Shape      string               `json:"shape"`
		Stats      metasim.WebhookStats `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Subscribed || out.Shape != "facebook" || out.Stats.Delivered != 10 {
		t.Fatalf("/_sim/webhooks: %+v %v", out, err)
	}
}
