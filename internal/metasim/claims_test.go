package metasim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/metasim"
)

type testClaim struct {
	Tenant string     `json:"tenant"`
	Key    string     `json:"key"`
	User   string     `json:"user"`
	Handle string     `json:"handle"`
	Kind   string     `json:"kind"`
	Target string     `json:"target"`
	Code   string     `json:"code,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

var (
	tIDRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@/-]*$`)
	tTargetRe = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`)
	tCodeRe   = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	tKinds    = map[string]bool{"ig_comment": true, "ig_mention": true, "ig_tag": true, "fb_comment": true, "fb_reaction": true, "ig_follow": true, "ig_like": true, "fb_share": true}
)

// strictParse is this test's own reading of the claim format (design §5).
func strictParse(line []byte) (testClaim, error) {
	var c testClaim
	if len(line) > 4096 {
		return c, errors.New("too long")
	}
	if !utf8.Valid(line) {
		return c, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	if dec.More() {
		return c, errors.New("trailing data")
	}
	switch {
	case !tIDRe.MatchString(c.Tenant) || !tIDRe.MatchString(c.Key) || !tIDRe.MatchString(c.User):
		return c, errors.New("bad tenant/key/user")
	case !tKinds[c.Kind]:
		return c, errors.New("bad kind")
	case !tTargetRe.MatchString(c.Target):
		return c, errors.New("bad target")
	case c.Kind != "ig_follow" && c.Kind != "ig_like" && c.Kind != "fb_share" && strings.TrimSpace(c.Handle) == "":
		return c, errors.New("handle required")
	case len(c.Handle) > 100:
		return c, errors.New("handle too long")
	case c.Code != "" && (len(c.Code) > 32 || !tCodeRe.MatchString(c.Code)):
		return c, errors.New("bad code")
	}
	return c, nil
}

// checker decides from the Graph API alone whether a claim is proven, with
// its own matching rules (not the engine's).
type checker struct {
	t     *testing.T
	s     *facebook.Session
	cache map[string][]facebook.Result
	ig    map[string]string // tenant -> IG user id
}

func (k *checker) list(path string, fields string) []facebook.Result {
	if v, ok := k.cache[path]; ok {
		return v
	}
	v := getAll(k.t, k.s, path, facebook.Params{"fields": fields, "limit": 50})
	k.cache[path] = v
	return v
}

func (k *checker) proven(c testClaim) bool {
	since := *c.Since
	atOrAfter := func(ts string) bool { return !parseMetaTime(k.t, ts).Before(since) }
	hasCode := func(text string) bool { return c.Code == "" || strings.Contains(text, c.Code) }
	switch c.Kind {
	case "ig_comment":
		for _, m := range k.list("/"+c.Target+"/comments", "id,text,timestamp,username,from{id,username}") {
			if strings.EqualFold(str(m, "from", "username"), c.Handle) && atOrAfter(str(m, "timestamp")) && hasCode(str(m, "text")) {
				return true
			}
		}
	case "fb_comment":
		for _, m := range k.list("/"+c.Target+"/comments", "id,message,created_time,from{id,name}") {
			if strings.EqualFold(str(m, "from", "name"), c.Handle) && atOrAfter(str(m, "created_time")) && hasCode(str(m, "message")) {
				return true
			}
		}
	case "fb_reaction":
		for _, m := range k.list("/"+c.Target+"/reactions", "id,name,type") {
			if strings.EqualFold(str(m, "name"), c.Handle) {
				return true
			}
		}
	case "ig_tag":
		for _, m := range k.list("/"+c.Target+"/tags", "id,username,timestamp") {
			if strings.EqualFold(str(m, "username"), c.Handle) && atOrAfter(str(m, "timestamp")) {
				return true
			}
		}
	case "ig_mention":
		res, err := k.s.Get("/"+k.ig[c.Tenant], facebook.Params{"fields": "mentioned_media.media_id(" + c.Target + "){caption,username,timestamp,media_type,id}"})
		if err != nil {
			var fe *facebook.Error
			if !errors.As(err, &fe) || fe.Code != 100 {
				k.t.Fatalf("mention lookup: %v", err)
			}
			return false
		}
		return strings.EqualFold(str(res, "mentioned_media", "username"), c.Handle) && atOrAfter(str(res, "mentioned_media", "timestamp"))
	default:
		k.t.Fatalf("kind %s is not verifiable", c.Kind)
	}
	return false
}

func TestGroundTruthMatchesTheGraph(t *testing.T) {
	e := newEnv(t, metasim.Config{PlatformBudget: metasim.Budget{Calls: 1_000_000, Window: time.Hour}})
	var claims []metasim.GeneratedClaim
	// Three rounds, with the clock moving, so pairs get reused.
	for round := 0; round < 3; round++ {
		claims = append(claims, e.sim.GenerateClaims(300, metasim.ClaimOptions{FraudRate: 0.35, CodeRate: 0.5})...)
		e.clock.Advance(10 * time.Minute)
	}
	if len(claims) != 900 {
		t.Fatalf("got %d claims", len(claims))
	}
	k := &checker{t: t, s: e.session(e.token("platform")), cache: map[string][]facebook.Result{}, ig: map[string]string{}}
	for _, b := range e.world.Brands {
		k.ig[b.Tenant] = b.IGUserID
	}
	truth := e.sim.Truth()
	usernames := map[string]string{}
	for _, u := range e.sim.World().Users {
		usernames[u.Ref] = u.IGUsername
	}
	keys := map[string]bool{}
	kinds := map[string]int{}
	frauds, caseVariants, withCode := 0, 0, 0
	for _, gc := range claims {
		c, err := strictParse(gc.Line)
		if err != nil {
			t.Fatalf("generated claim refused (%v): %s", err, gc.Line)
		}
		if c.Tenant != gc.Tenant || c.Key != gc.Key || c.Kind != gc.Kind || c.Since == nil {
			t.Fatalf("claim fields disagree: %s vs %+v", gc.Line, gc)
		}
		if keys[c.Tenant+"/"+c.Key] {
			t.Fatalf("duplicate key %s/%s", c.Tenant, c.Key)
		}
		keys[c.Tenant+"/"+c.Key] = true
		if g, ok := truth[c.Tenant+"/"+c.Key]; !ok || g != gc.Genuine {
			t.Fatalf("Truth() disagrees for %s", c.Key)
		}
		kinds[c.Kind]++
		if !gc.Genuine {
			frauds++
		}
		if c.Code != "" {
			withCode++
		}
		if strings.HasPrefix(c.Kind, "ig_") && c.Handle != usernames[c.User] {
			if !strings.EqualFold(c.Handle, usernames[c.User]) {
				t.Fatalf("IG handle %q is not user %s's username %q", c.Handle, c.User, usernames[c.User])
			}
			caseVariants++
		}
		switch c.Kind {
		case "ig_follow", "ig_like", "fb_share":
			continue
		}
		if got := k.proven(c); got != gc.Genuine {
			t.Errorf("%s %s %s handle %q target %s code %q: graph says proven=%v, truth genuine=%v", c.Tenant, c.Key, c.Kind, c.Handle, c.Target, c.Code, got, gc.Genuine)
		}
	}
	if len(kinds) != 8 || frauds < 200 || frauds > 430 || caseVariants == 0 || withCode == 0 {
		t.Fatalf("mix: kinds %v, frauds %d, case variants %d, with code %d", kinds, frauds, caseVariants, withCode)
	}
}

func TestDeterminism(t *testing.T) {
	mk := func(seed int64) (metasim.World, []string) {
		clock := newClock()
		s := metasim.New(metasim.Config{Seed: seed, Users: 300, Now: clock.Now})
		var lines []string
		for _, c := range s.GenerateClaims(200, metasim.ClaimOptions{}) {
			lines = append(lines, string(c.Line))
		}
		return s.World(), lines
	}
	w1, l1 := mk(7)
	w2, l2 := mk(7)
	if !reflect.DeepEqual(w1, w2) || !reflect.DeepEqual(l1, l2) {
		t.Fatal("same seed, different world or claims")
	}
	w3, l3 := mk(8)
	if reflect.DeepEqual(w1.Brands, w3.Brands) || reflect.DeepEqual(l1, l3) {
		t.Fatal("different seeds, same world")
	}
	// Shape of the world.
	if len(w1.Brands) != 3 || w1.Brands[2].Tier != "premium" || w1.Brands[2].TokenID != "tok-brand-03" || w1.Brands[0].TokenID != "" {
		t.Fatalf("brands: %+v", w1.Brands)
	}
	if len(w1.Tokens) != 2 || w1.Tokens[0].ID != "platform" || w1.Tokens[0].Type != "SYSTEM_USER" || len(w1.Tokens[0].Accounts) != 6 || len(w1.Tokens[1].Accounts) != 2 || !w1.Tokens[1].BUC {
		t.Fatalf("tokens: %+v", w1.Tokens)
	}
	tokRe := regexp.MustCompile(`^EAAB[A-Za-z0-9]{60}$`)
	for _, tk := range w1.Tokens {
		if !tokRe.MatchString(tk.Value) {
			t.Fatalf("token value %q", tk.Value)
		}
	}
	b := w1.Brands[0]
	if !strings.HasPrefix(b.IGUserID, "1784") || len(b.IGUserID) != 17 || !strings.HasPrefix(b.PageID, "10") || len(b.MediaIDs) != 5 || !strings.HasPrefix(b.MediaIDs[0], "179") || !strings.HasPrefix(b.PostIDs[0], b.PageID+"_") {
		t.Fatalf("ids: %+v", b)
	}
	unRe := regexp.MustCompile(`^[a-z0-9._]+$`)
	seen := map[string]bool{}
	for _, u := range w1.Users {
		if !unRe.MatchString(u.IGUsername) || seen[strings.ToLower(u.FBName)] || seen[u.IGUsername] {
			t.Fatalf("user %+v", u)
		}
		seen[strings.ToLower(u.FBName)], seen[u.IGUsername] = true, true
	}
	if _, err := json.Marshal(w1); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedLines(t *testing.T) {
	s := metasim.New(metasim.Config{Users: 50, Now: newClock().Now})
	lines := s.MalformedLines(20)
	seen := map[string]bool{}
	for i, l := range lines {
		if strings.ContainsAny(l, "\n\r") {
			t.Fatalf("line %d has a newline", i)
		}
		if seen[l] {
			t.Fatalf("line %d repeats", i)
		}
		seen[l] = true
		if _, err := strictParse([]byte(l)); err == nil {
			t.Errorf("line %d accepted: %.200s", i, l)
		}
	}
	if len(lines[6]) < 10*1024 {
		t.Errorf("no 10 KB line")
	}
	more := s.MalformedLines(45)
	seen = map[string]bool{}
	for _, l := range more {
		if seen[l] {
			t.Fatalf("repeated line when n > reasons: %.100s", l)
		}
		seen[l] = true
	}
}

func TestSideEndpoints(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	get := func(path string) (int, []byte) {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	post := func(path, body string) (int, []byte) {
		resp, err := http.Post(e.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, b := get("/_sim/healthz"); st != 200 || string(b) != "ok" {
		t.Fatalf("healthz %d %q", st, b)
	}
	st, b := get("/_sim/world")
	var w metasim.World
	if err := json.Unmarshal(b, &w); st != 200 || err != nil || len(w.Brands) != 3 || w.Tokens[0].Value != e.token("platform") {
		t.Fatalf("world %d %v", st, err)
	}
	st, b = post("/_sim/claims?n=40&fraud=0.2&malformed=3&tenants=brand-01,brand-03", "")
	if st != 200 {
		t.Fatalf("claims %d %s", st, b)
	}
	good, bad := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		c, err := strictParse(sc.Bytes())
		if err != nil {
			bad++
			continue
		}
		good++
		if c.Tenant == "brand-02" {
			t.Fatal("tenant filter ignored")
		}
	}
	if good != 40 || bad != 3 {
		t.Fatalf("claims: %d good, %d bad", good, bad)
	}
	st, b = get("/_sim/truth")
	if n := bytes.Count(b, []byte("\n")); st != 200 || n != 40 || !bytes.Contains(b, []byte(`"genuine":`)) || !bytes.Contains(b, []byte(`"kind":`)) {
		t.Fatalf("truth %d, %d lines", st, n)
	}

	if st, b := post("/_sim/tokens/platform", `{"state":"expired"}`); st != 200 || bytes.Contains(b, []byte(e.token("platform"))) {
		t.Fatalf("token state %d %s", st, b)
	}
	_, err := e.session(e.token("platform")).Get("/me", nil)
	if fe := fbError(t, err); fe.ErrorSubcode != 463 {
		t.Fatalf("after expiring via side endpoint: %+v", fe)
	}
	post("/_sim/tokens/platform", `{"state":"valid","usage_floor":90}`)
	res, err := e.session(e.token("platform")).Get("/me", nil)
	if err != nil || res.UsageInfo().App.CallCount < 90 {
		t.Fatalf("usage floor via side endpoint: %v %+v", err, res.UsageInfo())
	}
	post("/_sim/tokens/platform", `{"usage_floor":0,"throttle_minutes":10}`)
	if _, err := e.session(e.token("platform")).Get("/me", nil); fbError(t, err).Code != 4 {
		t.Fatal("throttle via side endpoint")
	}
	if st, _ := post("/_sim/tokens/nope", `{"state":"valid"}`); st != 404 {
		t.Fatalf("unknown token: %d", st)
	}
	if st, _ := post("/_sim/faults", `{"latency_ms":0,"error_rate":1}`); st != 200 {
		t.Fatal("faults")
	}
	_, err = e.session(e.token("tok-brand-03")).Get("/me", nil)
	if fe := fbError(t, err); fe.Code != 2 || !fe.IsTransient {
		t.Fatalf("fault via side endpoint: %+v", fe)
	}
	post("/_sim/faults", `{"error_rate":0}`)
	var spikes struct {
		Rate float64 `json:"spike_rate"`
		MS   int64   `json:"spike_latency_ms"`
	}
	if st, b := post("/_sim/faults", `{"spike_rate":0.25,"spike_latency_ms":70000}`); st != 200 ||
		json.Unmarshal(b, &spikes) != nil || spikes.Rate != 0.25 || spikes.MS != 70000 {
		t.Fatalf("spikes via side endpoint: %d %s", st, b)
	}
	post("/_sim/faults", `{"spike_rate":0}`)
	st, b = get("/_sim/requests")
	var log []metasim.Request
	if err := json.Unmarshal(b, &log); st != 200 || err != nil || len(log) != 4 {
		t.Fatalf("requests %d %v %d", st, err, len(log))
	}
}

func TestWriteEngineConfig(t *testing.T) {
	e := newEnv(t, metasim.Config{TenantBudget: metasim.Budget{Calls: 4800, Window: 24 * time.Hour}})
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "engine.json")
	secrets := filepath.Join(dir, "secrets")
	if err := e.sim.WriteEngineConfig(cfgPath, secrets); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range e.world.Tokens {
		if bytes.Contains(raw, []byte(tk.Value)) {
			t.Fatal("config holds a token value")
		}
	}
	if bytes.Contains(raw, []byte(testAppSecret)) {
		t.Fatal("config holds the app secret")
	}
	var cfg struct {
		PlatformToken string `json:"platform_token"`
		Tokens        []struct {
			ID       string
			Accounts []string
			Budget   struct {
				Calls  int
				Window string
			}
			Secret string
		}
		Tenants []struct {
			ID, Tier, Token string
			Accounts        []struct{ ID, Type string }
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PlatformToken != "platform" || len(cfg.Tokens) != 2 || len(cfg.Tenants) != 3 {
		t.Fatalf("config: %+v", cfg)
	}
	if tk := cfg.Tokens[1]; tk.ID != "tok-brand-03" || tk.Budget.Calls != 4800 || tk.Budget.Window != "24h" || cfg.Tokens[0].Budget.Window != "1h" {
		t.Fatalf("budgets: %+v", cfg.Tokens)
	}
	for _, tk := range cfg.Tokens {
		file := strings.TrimPrefix(tk.Secret, "file:")
		if !filepath.IsAbs(file) {
			t.Fatalf("secret ref %q not absolute", tk.Secret)
		}
		v, err := os.ReadFile(file)
		if err != nil || string(v) != e.token(tk.ID) {
			t.Fatalf("secret file %s: %v", file, err)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Fatalf("secret file mode %v", fi.Mode())
		}
	}
	if fi, _ := os.Stat(secrets); fi.Mode().Perm() != 0o700 {
		t.Fatalf("secrets dir mode %v", fi.Mode())
	}
	if v, _ := os.ReadFile(filepath.Join(secrets, "app_secret")); string(v) != testAppSecret {
		t.Fatal("app secret file")
	}
	t3 := cfg.Tenants[2]
	if t3.Tier != "premium" || t3.Token != "tok-brand-03" || len(t3.Accounts) != 2 || t3.Accounts[0].Type != "instagram" || t3.Accounts[1].Type != "page" || cfg.Tenants[0].Token != "" {
		t.Fatalf("tenants: %+v", cfg.Tenants)
	}
}

// Small worlds reuse (kind, user, target) pairs a lot: the rules that keep
// fraud false must hold there too.
func TestGroundTruthSmallWorlds(t *testing.T) {
	for seed := int64(1); seed <= 9; seed++ {
		users := []int{5, 20, 300}[seed%3]
		e := newEnv(t, metasim.Config{Seed: seed, Users: users, Brands: 1 + int(seed%4), MediaPerBrand: 1 + int(seed%3), PostsPerBrand: 1 + int(seed%2),
			PlatformBudget: metasim.Budget{Calls: 1_000_000, Window: time.Hour}})
		var claims []metasim.GeneratedClaim
		for round := 0; round < 4; round++ {
			claims = append(claims, e.sim.GenerateClaims(150, metasim.ClaimOptions{FraudRate: 0.5, CodeRate: []float64{-1, 0.5, 1}[(seed/3)%3]})...)
			e.clock.Advance(7 * time.Minute)
		}
		k := &checker{t: t, s: e.session(e.token("platform")), cache: map[string][]facebook.Result{}, ig: map[string]string{}}
		for _, b := range e.world.Brands {
			k.ig[b.Tenant] = b.IGUserID
		}
		for _, gc := range claims {
			c, err := strictParse(gc.Line)
			if err != nil {
				t.Fatal(err)
			}
			switch c.Kind {
			case "ig_follow", "ig_like", "fb_share":
				continue
			}
			if k.proven(c) != gc.Genuine {
				t.Errorf("seed %d, %d users: graph disagrees with genuine=%v for %s", seed, users, gc.Genuine, gc.Line)
			}
		}
	}
}
