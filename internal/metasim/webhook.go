package metasim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook shapes (WebhookOptions.Shape).
const (
	ShapeFacebook  = "facebook"  // {"object":..,"entry":[{"id","time","changes":[{"field","value"}]}]}
	ShapeInstagram = "instagram" // Instagram-Login flat entries: {"id","time","field","value"} (Instagram events only)
	ShapeMixed     = "mixed"     // Instagram POSTs alternate between the two; Page POSTs are always "facebook"
)

// Webhook event states (WebhookEvent.State).
const (
	WebhookPending   = "pending"   // queued, being delivered or retried
	WebhookDelivered = "delivered" // a POST carrying it was answered 2xx
	WebhookDropped   = "dropped"   // never sent (DropRate: a missed webhook)
	WebhookFailed    = "failed"    // every attempt failed
	WebhookCanceled  = "canceled"  // still queued when Unsubscribe or Close stopped deliveries
)

// WebhookOptions describe a webhook subscription (see Subscribe).
type WebhookOptions struct {
	URL         string // callback URL (http or https)
	VerifyToken string // sent as hub.verify_token in the handshake
	// Shape is "facebook" (default), "instagram" or "mixed"; see the
	// package comment.
	Shape      string
	Duplicates float64       // share of POSTs sent a second time, later (0..1)
	Delay      time.Duration // wall time from an action to its first POST; 0 = as soon as possible
	DropRate   float64       // share of events never delivered (0..1)
	MaxBatch   int           // events per POST, default 1
	Client     *http.Client  // default: a client with a 10 s timeout
	Tenants    []string      // only these brands' events; default all brands
}

// WebhookStats counts the events and POSTs of the current (or last)
// subscription. Events = Delivered + Dropped + Failed + Canceled + Pending.
type WebhookStats struct {
	Events     int `json:"events"`     // events recorded (actions with a webhook, for subscribed tenants)
	Delivered  int `json:"delivered"`  // events whose first POST was answered 2xx
	Duplicates int `json:"duplicates"` // events delivered a second time by a duplicate POST (2xx)
	Dropped    int `json:"dropped"`    // events never sent (DropRate)
	Failed     int `json:"failed"`     // events whose POST failed every attempt (a failed duplicate is not counted)
	Retries    int `json:"retries"`    // POST attempts after a failed one
	Canceled   int `json:"canceled"`   // events still queued when deliveries were stopped
	Pending    int `json:"pending"`    // events not yet delivered, failed or canceled
	Posts      int `json:"posts"`      // POST attempts, retries and duplicates included
}

// WebhookEvent is the ground truth of one webhook event: what happened in
// the world and what became of its delivery.
type WebhookEvent struct {
	Seq       int       `json:"seq"`    // 1, 2, ... in the order the actions happened
	Tenant    string    `json:"tenant"` // the brand notified
	Object    string    `json:"object"` // "instagram" or "page"
	EntryID   string    `json:"entry_id"`
	Field     string    `json:"field"`                // "comments", "mentions" or "feed"
	Item      string    `json:"item,omitempty"`       // feed: "comment" or "reaction"
	Verb      string    `json:"verb,omitempty"`       // feed: "add", "edited" or "remove"
	MediaID   string    `json:"media_id,omitempty"`   // IG media commented on or mentioning the brand
	CommentID string    `json:"comment_id,omitempty"` // IG or Page comment
	PostID    string    `json:"post_id,omitempty"`    // Page post
	UserRef   string    `json:"user,omitempty"`       // the claimant who acted ("u-12"); "" for noise users
	Claim     string    `json:"claim,omitempty"`      // "tenant/key" of the generated claim whose action this is; "" otherwise
	Time      time.Time `json:"time"`                 // simulated time of the change
	State     string    `json:"state"`                // pending, delivered, dropped, failed, canceled
	Copies    int       `json:"copies"`               // POSTs carrying it that were answered 2xx (2 when duplicated)
}

// Retry schedule: up to webhookAttempts POSTs, waiting backoff * 3^(n-1),
// at most webhookBackoffMax, after the n-th failure (200ms, 600ms, 1.8s,
// 5s). Tests may shorten the backoff.
const webhookAttempts = 5

var (
	webhookBackoff    = 200 * time.Millisecond
	webhookBackoffMax = 5 * time.Second
)

// maxWebhookEvents bounds the kept event records; when it is exceeded the
// oldest half is dropped (the stats keep counting).
const maxWebhookEvents = 1_000_000

type whEvent struct {
	pub   WebhookEvent
	value json.RawMessage // the change's value; nil once a POST body holds it
}

type whPost struct {
	due     time.Time
	object  string
	events  []*whEvent
	body    []byte
	attempt int // attempts made
	dup     bool
}

type webhooks struct {
	opts    WebhookOptions
	secret  string
	tenants map[string]bool  // nil: all
	simNow  func() time.Time // the sim clock, for entry times
	wallNow func() time.Time // wall clock for delays
	ctx     context.Context  // canceled by stop
	cancel  context.CancelFunc
	kick    chan struct{}
	done    chan struct{}
	backoff [2]time.Duration // first retry wait, cap

	mu       sync.Mutex
	rng      *rand.Rand
	stopped  bool
	seq      int
	events   []*whEvent // records, in Seq order
	fresh    []*whEvent // not yet sent, in due order
	freshDue []time.Time
	later    []*whPost // retries and duplicates, by due time
	inflight int
	igPosts  int // Instagram POST bodies built (for "mixed")
	stats    WebhookStats
}

// Subscribe performs Meta's verification handshake with o.URL and, when it
// succeeds, delivers a webhook for every later action in the world (see the
// package comment). The handshake is GET
// URL?hub.mode=subscribe&hub.challenge=<random>&hub.verify_token=<token>;
// it fails unless the answer is 2xx and its body is exactly the challenge.
// A new subscription replaces the current one (whose queued deliveries are
// canceled); statistics and event records start afresh.
func (s *Sim) Subscribe(o WebhookOptions) error {
	switch o.Shape {
	case "":
		o.Shape = ShapeFacebook
	case ShapeFacebook, ShapeInstagram, ShapeMixed:
	default:
		return fmt.Errorf("metasim: webhook shape must be facebook, instagram or mixed, not %q", o.Shape)
	}
	if o.Duplicates < 0 || o.Duplicates > 1 || o.DropRate < 0 || o.DropRate > 1 {
		return fmt.Errorf("metasim: webhook duplicates and drop rate must be within 0..1")
	}
	if o.Delay < 0 {
		o.Delay = 0
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("metasim: webhook URL %q is not an http(s) URL", o.URL)
	}
	var tenants map[string]bool
	if len(o.Tenants) > 0 {
		tenants = map[string]bool{}
		s.mu.Lock()
		for _, t := range o.Tenants {
			if s.brandByTenant[t] == nil {
				s.mu.Unlock()
				return fmt.Errorf("metasim: webhook tenants: unknown tenant %q", t)
			}
			tenants[t] = true
		}
		s.mu.Unlock()
	}
	if err := handshake(o, u); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := &webhooks{
		opts: o, secret: s.cfg.AppSecret, tenants: tenants,
		simNow: s.now, wallNow: time.Now,
		ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		backoff: [2]time.Duration{webhookBackoff, webhookBackoffMax},
	}
	s.mu.Lock()
	s.whSubs++
	w.rng = rand.New(rand.NewPCG(uint64(s.cfg.Seed), 0x776562686f6f6b+uint64(s.whSubs))) // "webhook"
	old := s.wh
	s.wh, s.whLast = w, w
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
	go w.run()
	return nil
}

func handshake(o WebhookOptions, u *url.URL) error {
	challenge := strconv.FormatUint(1_000_000_000+rand.Uint64N(9_000_000_000), 10)
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.challenge", challenge)
	q.Set("hub.verify_token", o.VerifyToken)
	hu := *u
	hu.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hu.String(), nil)
	if err != nil {
		return fmt.Errorf("metasim: webhook handshake: %w", err)
	}
	req.Header.Set("User-Agent", "facebookplatform/1.0 (+http://developers.facebook.com)")
	resp, err := o.Client.Do(req)
	if err != nil {
		// The error quotes the URL, verify token included: say it without.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("metasim: webhook handshake: GET %s: %w", o.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("metasim: webhook handshake: reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("metasim: webhook handshake: %s answered %d: %.200q", o.URL, resp.StatusCode, body)
	}
	if string(body) != challenge {
		return fmt.Errorf("metasim: webhook handshake: %s did not echo the challenge %q (answered %.200q)", o.URL, challenge, body)
	}
	return nil
}

// Unsubscribe stops webhook deliveries: queued events are canceled and an
// in-flight POST is abandoned. Stats and event records stay readable.
func (s *Sim) Unsubscribe() {
	s.mu.Lock()
	w := s.wh
	s.wh = nil
	s.mu.Unlock()
	if w != nil {
		w.stop()
	}
}

// Close stops the background work of the sim (webhook deliveries). The
// Graph handler keeps working.
func (s *Sim) Close() error {
	s.Unsubscribe()
	return nil
}

// FlushWebhooks waits until every queued delivery, retry and duplicate of
// the current subscription is done (or ctx ends). Without a subscription it
// returns at once.
func (s *Sim) FlushWebhooks(ctx context.Context) error {
	s.mu.Lock()
	w := s.wh
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		w.mu.Lock()
		idle := w.stopped || (len(w.fresh) == 0 && len(w.later) == 0 && w.inflight == 0)
		w.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// WebhookStats returns the counts of the current or last subscription.
func (s *Sim) WebhookStats() WebhookStats {
	s.mu.Lock()
	w := s.whLast
	s.mu.Unlock()
	if w == nil {
		return WebhookStats{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// WebhookEvents returns the event records of the current or last
// subscription, in order: what each event was about, which claim's action
// caused it and whether it was delivered, dropped, failed or canceled.
func (s *Sim) WebhookEvents() []WebhookEvent {
	s.mu.Lock()
	w := s.whLast
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WebhookEvent, len(w.events))
	for i, e := range w.events {
		out[i] = e.pub
	}
	return out
}

// webhookSubscribed reports whether the sim delivers webhooks now and to which URL.
func (s *Sim) webhookSubscribed() (bool, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wh == nil {
		return false, "", ""
	}
	return true, s.wh.opts.URL, s.wh.opts.Shape
}

func (w *webhooks) stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.fresh {
		w.cancelEvent(e)
	}
	for _, p := range w.later {
		if !p.dup {
			for _, e := range p.events {
				w.cancelEvent(e)
			}
		}
	}
	w.fresh, w.freshDue, w.later = nil, nil, nil
}

func (w *webhooks) cancelEvent(e *whEvent) {
	if e.pub.State == WebhookPending {
		e.pub.State = WebhookCanceled
		e.value = nil
		w.stats.Pending--
		w.stats.Canceled++
	}
}

// ---- recording events (called with s.mu held) ----

// whMark returns the last event sequence number, for whTag.
func (s *Sim) whMark() int {
	if s.wh == nil {
		return 0
	}
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	return s.wh.seq
}

// whTag marks the events after mark as caused by claim.
func (s *Sim) whTag(mark int, claim string) {
	w := s.wh
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.events) - 1; i >= 0 && w.events[i].pub.Seq > mark; i-- {
		w.events[i].pub.Claim = claim
	}
}

func (s *Sim) whEmit(b *brand, ev WebhookEvent, value any) {
	w := s.wh
	if w == nil || (w.tenants != nil && !w.tenants[b.tenant]) {
		return
	}
	data, err := json.Marshal(value)
	if err != nil {
		return // cannot happen with our own values
	}
	ev.Tenant = b.tenant
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.seq++
	ev.Seq = w.seq
	ev.State = WebhookPending
	e := &whEvent{pub: ev, value: data}
	if len(w.events) >= maxWebhookEvents {
		w.events = append(w.events[:0], w.events[len(w.events)/2:]...)
	}
	w.events = append(w.events, e)
	w.stats.Events++
	if w.opts.DropRate > 0 && w.rng.Float64() < w.opts.DropRate {
		e.pub.State = WebhookDropped
		e.value = nil
		w.stats.Dropped++
		return
	}
	w.stats.Pending++
	w.fresh = append(w.fresh, e)
	w.freshDue = append(w.freshDue, w.wallNow().Add(w.opts.Delay))
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

type whIGFrom struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

type whFBFrom struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type whIGCommentValue struct {
	From  whIGFrom `json:"from"`
	Media struct {
		ID               string `json:"id"`
		MediaProductType string `json:"media_product_type"`
	} `json:"media"`
	ID   string `json:"id"`
	Text string `json:"text"`
}

type whMentionValue struct {
	MediaID   string `json:"media_id"`
	CommentID string `json:"comment_id,omitempty"`
}

type whFeedValue struct {
	From         whFBFrom `json:"from"`
	Item         string   `json:"item"`
	Verb         string   `json:"verb"`
	PostID       string   `json:"post_id"`
	CommentID    string   `json:"comment_id,omitempty"`
	ParentID     string   `json:"parent_id,omitempty"`
	Message      string   `json:"message,omitempty"`
	ReactionType string   `json:"reaction_type,omitempty"`
	CreatedTime  int64    `json:"created_time"`
}

// whIGComment: a comments event for the brand owning the media, and a
// mentions event for every brand the text @mentions.
func (s *Sim) whIGComment(c *igComment) {
	if s.wh == nil {
		return
	}
	if b := c.media.brand; b != nil {
		var v whIGCommentValue
		v.From = whIGFrom{ID: c.by.igID, Username: c.by.username}
		v.Media.ID, v.Media.MediaProductType = c.media.id, "FEED"
		v.ID, v.Text = c.id, c.text
		s.whEmit(b, WebhookEvent{Object: "instagram", EntryID: b.igID, Field: "comments",
			MediaID: c.media.id, CommentID: c.id, UserRef: c.by.ref, Time: c.ts}, v)
	}
	for _, b := range s.brands {
		if mentions(c.text, b.igUsername) {
			s.whEmit(b, WebhookEvent{Object: "instagram", EntryID: b.igID, Field: "mentions",
				MediaID: c.media.id, CommentID: c.id, UserRef: c.by.ref, Time: c.ts},
				whMentionValue{MediaID: c.media.id, CommentID: c.id})
		}
	}
}

// whUserMedia: a mentions event for every brand a user's caption @mentions.
// Tags have no webhook.
func (s *Sim) whUserMedia(m *igMedia) {
	if s.wh == nil || m.owner == nil {
		return
	}
	for _, b := range s.brands {
		if mentions(m.caption, b.igUsername) {
			s.whEmit(b, WebhookEvent{Object: "instagram", EntryID: b.igID, Field: "mentions",
				MediaID: m.id, UserRef: m.owner.ref, Time: m.ts}, whMentionValue{MediaID: m.id})
		}
	}
}

// whFBComment: a Page feed comment event; verb "add", "edited" or "remove".
func (s *Sim) whFBComment(c *fbComment, verb string, at time.Time) {
	if s.wh == nil {
		return
	}
	b := c.post.brand
	v := whFeedValue{From: whFBFrom{ID: c.by.fbID, Name: c.by.fbName}, Item: "comment", Verb: verb,
		PostID: c.post.id, CommentID: c.id, ParentID: c.post.id, CreatedTime: at.Unix()}
	if verb != "remove" {
		v.Message = c.message
	}
	s.whEmit(b, WebhookEvent{Object: "page", EntryID: b.pageID, Field: "feed", Item: "comment", Verb: verb,
		PostID: c.post.id, CommentID: c.id, UserRef: c.by.ref, Time: at}, v)
}

// whReaction: a Page feed reaction event.
func (s *Sim) whReaction(p *post, r *reaction) {
	if s.wh == nil {
		return
	}
	b := p.brand
	s.whEmit(b, WebhookEvent{Object: "page", EntryID: b.pageID, Field: "feed", Item: "reaction", Verb: "add",
		PostID: p.id, UserRef: r.by.ref, Time: r.ts},
		whFeedValue{From: whFBFrom{ID: r.by.fbID, Name: r.by.fbName}, Item: "reaction", Verb: "add",
			PostID: p.id, ParentID: p.id, ReactionType: strings.ToLower(r.typ), CreatedTime: r.ts.Unix()})
}

// ---- delivering ----

func (w *webhooks) run() {
	defer close(w.done)
	for {
		p := w.next()
		if p == nil {
			return
		}
		ok := w.send(p)
		w.finish(p, ok)
	}
}

// next waits for the next POST that is due; nil when stopped.
func (w *webhooks) next() *whPost {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.stopped {
			return nil
		}
		now := w.wallNow()
		var wake time.Time
		if len(w.later) > 0 {
			if p := w.later[0]; !p.due.After(now) {
				w.later = w.later[1:]
				w.inflight++
				return p
			}
			wake = w.later[0].due
		}
		if len(w.fresh) > 0 {
			if !w.freshDue[0].After(now) {
				w.inflight++
				return w.batch(now)
			}
			if wake.IsZero() || w.freshDue[0].Before(wake) {
				wake = w.freshDue[0]
			}
		}
		w.mu.Unlock()
		var timer *time.Timer
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(wake.Sub(now))
			tc = timer.C
		}
		select {
		case <-w.kick:
		case <-tc:
		case <-w.ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		w.mu.Lock()
	}
}

// batch takes up to MaxBatch due fresh events of the same object and builds
// their POST body. Called with w.mu held.
func (w *webhooks) batch(now time.Time) *whPost {
	object := w.fresh[0].pub.Object
	n := 1
	for n < len(w.fresh) && n < w.opts.MaxBatch && w.fresh[n].pub.Object == object && !w.freshDue[n].After(now) {
		n++
	}
	p := &whPost{object: object, events: append([]*whEvent(nil), w.fresh[:n]...)}
	w.fresh = w.fresh[n:]
	w.freshDue = w.freshDue[n:]
	if len(w.fresh) == 0 {
		w.fresh, w.freshDue = nil, nil // let the backing arrays go
	}
	flat := false
	if object == "instagram" {
		switch w.opts.Shape {
		case ShapeInstagram:
			flat = true
		case ShapeMixed:
			flat = w.igPosts%2 == 1
		}
		w.igPosts++
	}
	p.body = buildBody(object, p.events, w.simNow().Unix(), flat)
	for _, e := range p.events {
		e.value = nil
	}
	return p
}

type whChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type whEntry struct {
	ID      string          `json:"id"`
	Time    int64           `json:"time"`
	Changes []whChange      `json:"changes,omitempty"`
	Field   string          `json:"field,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// buildBody writes {"object":..,"entry":[..]}. In the facebook shape,
// consecutive events for the same account (and change time) share one
// entry's changes; in the flat (Instagram Login) shape every event is its
// own entry. An entry's time is when its change happened: Meta sends an
// update as it happens, while metasim creates some actions backdated (a
// comment made before the task was published) and may deliver late, and
// the entry time must not make such a comment look recent. now is used
// for events without a time.
func buildBody(object string, events []*whEvent, now int64, flat bool) []byte {
	var entries []*whEntry
	for _, e := range events {
		at := now
		if !e.pub.Time.IsZero() {
			at = e.pub.Time.Unix()
		}
		if flat {
			entries = append(entries, &whEntry{ID: e.pub.EntryID, Time: at, Field: e.pub.Field, Value: e.value})
			continue
		}
		if n := len(entries); n > 0 && entries[n-1].ID == e.pub.EntryID && entries[n-1].Time == at {
			entries[n-1].Changes = append(entries[n-1].Changes, whChange{e.pub.Field, e.value})
			continue
		}
		entries = append(entries, &whEntry{ID: e.pub.EntryID, Time: at, Changes: []whChange{{e.pub.Field, e.value}}})
	}
	body, _ := json.Marshal(struct {
		Object string     `json:"object"`
		Entry  []*whEntry `json:"entry"`
	}{object, entries})
	return body
}

// send makes one POST attempt and reports whether it was answered 2xx.
func (w *webhooks) send(p *whPost) bool {
	p.attempt++
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.opts.URL, bytes.NewReader(p.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sign(sha256.New, w.secret, p.body))
	req.Header.Set("X-Hub-Signature", "sha1="+sign(sha1.New, w.secret, p.body))
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// sign is the hex HMAC of body keyed by the app secret (an empty key when
// Config.AppSecret is empty).
func sign(h func() hash.Hash, secret string, body []byte) string {
	m := hmac.New(h, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (w *webhooks) finish(p *whPost, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight--
	w.stats.Posts++
	now := w.wallNow()
	switch {
	case ok:
		for _, e := range p.events {
			e.pub.Copies++
			if p.dup {
				w.stats.Duplicates++
			} else if e.pub.State == WebhookPending {
				e.pub.State = WebhookDelivered
				w.stats.Pending--
				w.stats.Delivered++
			}
		}
		if !p.dup && !w.stopped && w.opts.Duplicates > 0 && w.rng.Float64() < w.opts.Duplicates {
			lag := max(w.opts.Delay, 100*time.Millisecond) + time.Duration(w.rng.Int64N(int64(400*time.Millisecond)))
			w.schedule(&whPost{due: now.Add(lag), object: p.object, events: p.events, body: p.body, dup: true})
		}
	case w.stopped:
		if !p.dup {
			for _, e := range p.events {
				w.cancelEvent(e)
			}
		}
	case p.attempt < webhookAttempts:
		w.stats.Retries++
		back := w.backoff[0]
		for i := 1; i < p.attempt && back < w.backoff[1]; i++ {
			back *= 3
		}
		p.due = now.Add(min(back, w.backoff[1]))
		w.schedule(p)
	default:
		if !p.dup {
			for _, e := range p.events {
				if e.pub.State == WebhookPending {
					e.pub.State = WebhookFailed
					w.stats.Pending--
					w.stats.Failed++
				}
			}
		}
	}
}

// schedule inserts p into later by due time. Called with w.mu held.
func (w *webhooks) schedule(p *whPost) {
	i := len(w.later)
	for i > 0 && w.later[i-1].due.After(p.due) {
		i--
	}
	w.later = append(w.later, nil)
	copy(w.later[i+1:], w.later[i:])
	w.later[i] = p
	select {
	case w.kick <- struct{}{}:
	default:
	}
}
