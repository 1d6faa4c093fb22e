package metasim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

var versionRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// answer is what one Graph call resolves to, before it is written.
type answer struct {
	body    any
	err     *graphError
	tok     *tokenRec
	kind    string // "instagram" or "pages": which BUC type the call counts as
	version string
	oauth   bool // /oauth/access_token: no token budget, so no usage headers
}

func (s *Sim) serveGraph(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost && isOAuthPath(r.URL.Path) {
		// Clients (huandu's App.ExchangeToken) POST the parameters as a
		// form. Read it before taking the lock: the body may come slowly.
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err == nil {
			q = r.Form
		}
	}

	s.mu.Lock()
	now := s.now()
	a := s.answer(r, q, now)
	trace := randString(s.frng, alnum, 11)
	faults := s.faults
	wait := faults.Latency
	if faults.SpikeRate > 0 && faults.SpikeLatency > 0 && s.frng.Float64() < faults.SpikeRate {
		wait += faults.SpikeLatency
	}
	appUsage, bucUsage := s.usageHeaders(&a, now)
	s.mu.Unlock()

	entry := Request{Time: now, Path: r.URL.Path}
	if a.tok != nil {
		entry.TokenID = a.tok.id
	}

	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-r.Context().Done():
			t.Stop()
			entry.Outcome = OutcomeCanceled
			s.appendLog(entry)
			return
		case <-t.C:
		}
	}

	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	h.Set("Facebook-Api-Version", a.version)
	h.Set("X-Fb-Trace-Id", trace)
	if appUsage != "" {
		h.Set("X-App-Usage", appUsage)
	}
	if bucUsage != "" {
		h.Set("X-Business-Use-Case-Usage", bucUsage)
	}
	status, body := http.StatusOK, a.body
	if a.err != nil {
		status, body = a.err.status, a.err.body(trace)
		entry.Code, entry.Outcome = a.err.code, a.err.logOutcome()
		if a.err.code == 190 {
			h.Set("WWW-Authenticate", `OAuth "Facebook Platform" "invalid_token" "`+a.err.msg+`"`)
		}
	} else {
		entry.Outcome = OutcomeOK
	}
	entry.Status = status
	data, err := marshal(body)
	if err != nil { // cannot happen with our own values; answer like a fault
		status, data = 500, []byte(`{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","is_transient":true,"code":2,"fbtrace_id":"`+trace+`"}}`)
		entry.Status, entry.Code, entry.Outcome = 500, 2, OutcomeFault
	}
	s.appendLog(entry) // before answering, so a client sees its call in the log
	// Meta's clock: an engine compares it with expires_at, which is sim
	// time too (real wall time would be wrong with Speed > 1).
	h.Set("Date", httpDate(s.now()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

func (s *Sim) appendLog(e Request) {
	s.mu.Lock()
	if len(s.log) >= maxLog {
		s.log = append(s.log[:0], s.log[len(s.log)/2:]...)
	}
	s.log = append(s.log, e)
	s.mu.Unlock()
}

func requestToken(r *http.Request, q url.Values) (val string, inQuery bool) {
	if v := q.Get("access_token"); v != "" {
		return v, true
	}
	h := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "OAuth "} {
		if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
			return strings.TrimSpace(h[len(p):]), false
		}
	}
	return "", false
}

func appsecretProof(secret, token string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// answer resolves a Graph call. Called with s.mu held.
func (s *Sim) answer(r *http.Request, q url.Values, now time.Time) (a answer) {
	path := r.URL.Path
	segs := strings.Split(strings.Trim(path, "/"), "/")
	versionOK := len(segs) > 0 && versionRe.MatchString(segs[0])
	a.version = s.cfg.Version
	if versionOK {
		a.version = segs[0]
		segs = segs[1:]
	}
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	if len(segs) == 2 && segs[0] == "oauth" && segs[1] == "access_token" {
		a.oauth = true
		return s.oauthAnswer(r, q, now, a)
	}
	val, inQuery := requestToken(r, q)
	first := ""
	if len(segs) > 0 {
		first = segs[0]
	}

	// The token.
	if val == "" {
		if first == "me" {
			a.err = errNoActiveToken()
		} else {
			a.err = errNoToken()
		}
		return a
	}
	tok := s.lookupToken(val)
	if tok == nil {
		if strings.HasPrefix(val, s.cfg.AppID+"|") {
			a.err = errBadClientSecret()
		} else {
			a.err = errCannotParseToken()
		}
		return a
	}
	a.tok = tok
	a.kind = s.callKind(tok, first)

	// Every call by a known token counts, whatever its outcome.
	admitted := tok.admit(now)
	if tok.appID != s.cfg.AppID {
		a.err = errOtherApp(s.cfg.AppID)
		return a
	}
	if a.err = s.tokenStateError(tok, now); a.err != nil {
		return a
	}
	if s.cfg.AppSecret != "" && !tok.isApp {
		proof := q.Get("appsecret_proof")
		if proof == "" {
			a.err = errProofMissing()
			return a
		}
		if !hmac.Equal([]byte(strings.ToLower(proof)), []byte(appsecretProof(s.cfg.AppSecret, val))) {
			a.err = errProofInvalid()
			return a
		}
	}
	if !admitted {
		switch {
		case tok.typ == "USER": // a user's own rate limit
			a.err = errUserLimit()
		case !tok.buc:
			a.err = errAppLimit()
		case a.kind == "pages":
			a.err = errPageLimit()
		default:
			a.err = errIGLimit()
		}
		return a
	}
	if !versionOK {
		a.err = errUnknownPath(path)
		return a
	}
	if s.faults.ErrorRate > 0 && s.frng.Float64() < s.faults.ErrorRate {
		if s.frng.IntN(2) == 0 {
			a.err = errFault(500)
		} else {
			a.err = errFault(503)
		}
		return a
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		id := first
		if id == "" {
			id = "/"
		}
		a.err = errMethod(strings.ToLower(r.Method), id)
		return a
	}

	c := &rctx{s: s, q: q, tok: tok, now: now, version: a.version}
	c.base = "http://" + r.Host + "/" + a.version
	if r.TLS != nil {
		c.base = "https://" + r.Host + "/" + a.version
	}
	if inQuery {
		c.token = val
	}
	c.proof = q.Get("appsecret_proof")
	switch q.Get("date_format") {
	case `Y-m-d\TH:i:sP`:
		c.dateLayout = "2006-01-02T15:04:05-07:00"
	case "U":
		c.unixDates = true
	}
	body, gerr := s.route(c, segs)
	if gerr != nil {
		a.err = gerr
		return a
	}
	a.body = body
	return a
}

// lookupToken finds a token by its value, the app access token included;
// nil when unknown. Called with s.mu held.
func (s *Sim) lookupToken(val string) *tokenRec {
	if t := s.tokenByValue[val]; t != nil {
		return t
	}
	if val != "" && val == s.appTok.value {
		return s.appTok
	}
	return nil
}

// tokenStateError is the 190 error a revoked, invalid or expired token gets;
// nil when the token works.
func (s *Sim) tokenStateError(t *tokenRec, now time.Time) *graphError {
	switch {
	case t.revoked:
		return errNotAuthorized(t.appID)
	case t.invalid:
		return errPasswordChanged()
	case t.expired(now):
		return errExpired(t.expiresAt, now)
	}
	return nil
}

// callKind is the BUC type a call counts as: "pages" for Page objects,
// "instagram" for everything else.
func (s *Sim) callKind(tok *tokenRec, first string) string {
	switch first {
	case "me", "debug_token":
		if tok.typ == "PAGE" {
			return "pages"
		}
		return "instagram"
	}
	switch s.objects[first].(type) {
	case *pageNode, *post, *fbComment:
		return "pages"
	}
	return "instagram"
}

func (s *Sim) usageHeaders(a *answer, now time.Time) (app, buc string) {
	if a.oauth {
		return "", ""
	}
	if a.tok == nil {
		return `{"call_count":0,"total_cputime":0,"total_time":0}`, ""
	}
	t := a.tok
	pct := t.usage(now)
	au, _ := json.Marshal(omap{{"call_count", pct}, {"total_cputime", pct / 4}, {"total_time", pct / 2}})
	if !t.buc || t.brand == nil {
		return string(au), ""
	}
	mins := 0
	if ra := t.regainAt(now); !ra.IsZero() {
		mins = int(math.Ceil(ra.Sub(now).Minutes()))
		if mins < 1 {
			mins = 1
		}
	}
	key := t.brand.igID
	if a.kind == "pages" {
		key = t.brand.pageID
	}
	bu, _ := json.Marshal(map[string][]omap{key: {{
		{"type", a.kind}, {"call_count", pct}, {"total_cputime", pct / 4}, {"total_time", pct / 2},
		{"estimated_time_to_regain_access", mins},
	}}})
	return string(au), string(bu)
}

// readableAccounts lists the account ids (IG users and Pages) a token reads.
func (s *Sim) readableAccounts(t *tokenRec) []string {
	out := []string{}
	for _, b := range s.brands {
		if s.canRead(t, b) {
			out = append(out, b.igID, b.pageID)
		}
	}
	return out
}

func (s *Sim) canRead(t *tokenRec, b *brand) bool {
	switch {
	case t.isPlatform:
		return b.platformAccess
	case t.brand != nil:
		return t.brand == b
	}
	return false
}

// route answers a call whose token, proof and budget have been checked.
func (s *Sim) route(c *rctx, segs []string) (any, *graphError) {
	if len(segs) == 0 {
		return nil, errUnknownPath("/")
	}
	id := segs[0]
	if id == "debug_token" {
		if len(segs) > 1 {
			return nil, errUnknownPath("/" + strings.Join(segs[1:], "/"))
		}
		return s.debugToken(c)
	}
	if len(segs) > 2 {
		return nil, errUnknownPath("/" + strings.Join(segs[2:], "/"))
	}
	self := false
	if id == "me" {
		if c.tok.isApp {
			return nil, errNoActiveToken()
		}
		id, self = c.tok.principalID, true
	}
	obj, ok := s.objects[id]
	if !ok {
		return nil, errNotFound(id, "get")
	}
	// Can this token read it?
	switch o := obj.(type) {
	case *igAccountNode:
		if !s.canRead(c.tok, o.b) {
			return nil, errIGPermission()
		}
	case *pageNode:
		if !s.canRead(c.tok, o.b) {
			return nil, errPagePermission()
		}
	case *igMedia:
		if o.brand == nil { // others' media are reachable only through mentioned_media
			return nil, errNotFound(id, "get")
		}
		if !s.canRead(c.tok, o.brand) {
			return nil, errIGPermission()
		}
	case *igComment:
		if o.media.brand == nil {
			return nil, errNotFound(id, "get")
		}
		if !s.canRead(c.tok, o.media.brand) {
			return nil, errIGPermission()
		}
	case *post:
		if !s.canRead(c.tok, o.brand) {
			return nil, errPagePermission()
		}
	case *fbComment:
		if !s.canRead(c.tok, o.post.brand) {
			return nil, errPagePermission()
		}
	case *sysUserNode: // a user reads only itself
		if !self && id != c.tok.principalID {
			return nil, errNotFound(id, "get")
		}
	}

	var sel []*fsel
	if _, has := c.q["fields"]; has {
		var err error
		if sel, err = parseFields(c.q.Get("fields")); err != nil {
			return nil, errSyntax(err)
		}
	}
	if len(segs) == 1 {
		out, err := c.node(obj, sel)
		if err != nil {
			return nil, toGraphError(err)
		}
		return out, nil
	}
	out, err := c.edge(obj, "/"+segs[0]+"/"+segs[1], segs[1], sel)
	if err != nil {
		return nil, toGraphError(err)
	}
	return out, nil
}

func toGraphError(err error) *graphError {
	if ge, ok := err.(*graphError); ok {
		return ge
	}
	if se, ok := err.(*syntaxError); ok {
		return errSyntax(se)
	}
	return errParam("(#100) " + err.Error())
}
