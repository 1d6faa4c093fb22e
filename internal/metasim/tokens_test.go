package metasim_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/metasim"
)

const (
	day         = 24 * time.Hour
	ourAppName  = "Social Proof Verifier"
	otherPrefix = "Error validating application"
)

var defaultScopes = []string{"instagram_basic", "instagram_manage_comments", "pages_read_engagement", "pages_read_user_content", "pages_show_list", "business_management"}

// Every answer carries Meta's clock, the sim clock, in its Date header: at
// Speed 3600 one wall second is one simulated hour.
func TestDateHeaderIsSimClock(t *testing.T) {
	e := newEnv(t, metasim.Config{Speed: 3600})
	rec := &recorder{rt: e.srv.Client().Transport}
	client := &http.Client{Transport: rec}
	app := facebook.New(testAppID, testAppSecret)
	session := func(value string) *facebook.Session {
		s := e.sessionWith(app, value, true)
		s.HttpClient = client
		return s
	}
	short := e.mint(t, metasim.MintOptions{Tenant: "brand-02", ExpiresIn: 90 * time.Minute})
	long := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong})
	oauth := e.oauthApp(testAppID, testAppSecret, testVersion, client)

	cases := []struct {
		name       string
		call       func() error
		wantStatus int
	}{
		{"graph call", func() error { _, err := session(e.token("platform")).Get("/me", nil); return err }, 200},
		{"graph error: unknown token", func() error { _, err := session("EAABnotatoken").Get("/me", nil); return err }, 400},
		{"graph error: minted token expired by the sim clock", func() error { _, err := session(short.Value).Get("/me", nil); return err }, 400},
		{"debug_token", func() error { _, err := session(long.Value).Inspect(); return err }, 200},
		{"oauth exchange", func() error { _, _, err := oauth.ExchangeToken(long.Value); return err }, 200},
		{"oauth error", func() error { _, _, err := oauth.ExchangeToken("EAABnotatoken"); return err }, 400},
		{"side endpoint", func() error {
			resp, err := client.Get(e.srv.URL + "/_sim/world")
			if err == nil {
				resp.Body.Close()
			}
			return err
		}, 200},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(time.Second) // one simulated hour
			now := e.sim.Now()
			if got := now.Sub(e.world.Start); got != time.Duration(i+1)*time.Hour {
				t.Fatalf("sim clock advanced %v after %d wall seconds at speed 3600", got, i+1)
			}
			err := tc.call()
			if (err == nil) != (tc.wantStatus == 200) {
				t.Fatalf("call error %v, want status %d", err, tc.wantStatus)
			}
			status, h := rec.last()
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d", status, tc.wantStatus)
			}
			date, perr := http.ParseTime(h.Get("Date"))
			if perr != nil {
				t.Fatalf("Date header %q: %v", h.Get("Date"), perr)
			}
			if !date.Equal(now.Truncate(time.Second)) {
				t.Fatalf("Date %s, want the sim clock %s (wall clock is %s)", date, now.UTC(), e.clock.Now())
			}
		})
	}
	// The engine's use: Meta's now against expires_at.
	_, h := rec.last()
	date, _ := http.ParseTime(h.Get("Date"))
	if date.Unix() < short.Expires || short.Expires < e.world.Start.Unix()+5400 {
		t.Fatalf("Date %d should be past the short token's expires_at %d", date.Unix(), short.Expires)
	}
	if err := e.graphErr(short.Value, "/me"); fbError(t, err).ErrorSubcode != 463 {
		t.Fatalf("short token past its expiry in sim time: %v", err)
	}
}

func TestMintToken(t *testing.T) {
	budget := metasim.Budget{Calls: 7, Window: 24 * time.Hour}
	e := newEnv(t, metasim.Config{TenantBudget: budget})
	now := e.sim.Now().Unix()
	b2 := e.brand("brand-02")
	cases := []struct {
		name  string
		o     metasim.MintOptions
		check func(t *testing.T, tok metasim.Token)
	}{
		{"short-lived user token (default kind)", metasim.MintOptions{Tenant: "brand-02"}, func(t *testing.T, tok metasim.Token) {
			if tok.ID != "tok-brand-02-1" || tok.Type != "USER" || tok.BUC || tok.State != "valid" {
				t.Errorf("id/type/buc/state: %+v", tok)
			}
			if tok.Expires < now+3600 || tok.Expires > now+7200 {
				t.Errorf("expires_at %d is not 1-2 h after issue %d", tok.Expires, now)
			}
			if tok.UserID != tok.GrantedBy || tok.Name == "" {
				t.Errorf("/me of a USER token is its user: %+v", tok)
			}
		}},
		{"long-lived user token", metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong}, func(t *testing.T, tok metasim.Token) {
			if tok.ID != "tok-brand-02-2" || tok.Type != "USER" || tok.Expires != now+int64(60*day/time.Second) {
				t.Errorf("%+v", tok)
			}
		}},
		{"page token", metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage}, func(t *testing.T, tok metasim.Token) {
			if tok.ID != "tok-brand-02-3" || tok.Type != "PAGE" || tok.Expires != 0 || !tok.BUC || tok.UserID != b2.PageID || tok.GrantedBy == b2.PageID {
				t.Errorf("%+v", tok)
			}
		}},
		{"token of another app", metasim.MintOptions{Tenant: "brand-02", App: metasim.MintAppOther}, func(t *testing.T, tok metasim.Token) {
			if tok.AppID == testAppID || tok.AppID == "" {
				t.Errorf("app_id %q", tok.AppID)
			}
		}},
		{"fewer scopes", metasim.MintOptions{Tenant: "brand-02", Scopes: []string{"instagram_basic", "pages_read_engagement", "instagram_basic"}}, func(t *testing.T, tok metasim.Token) {
			if !slices.Equal(tok.Scopes, []string{"instagram_basic", "pages_read_engagement"}) {
				t.Errorf("scopes %v", tok.Scopes)
			}
		}},
		{"no scopes", metasim.MintOptions{Tenant: "brand-02", Scopes: []string{}}, func(t *testing.T, tok metasim.Token) {
			if tok.Scopes == nil || len(tok.Scopes) != 0 {
				t.Errorf("scopes %#v", tok.Scopes)
			}
		}},
		{"expires_in overrides the kind", metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage, ExpiresIn: 10 * time.Minute}, func(t *testing.T, tok metasim.Token) {
			if tok.Expires != now+600 || tok.State != "valid" {
				t.Errorf("%+v", tok)
			}
		}},
		{"negative expires_in: already expired", metasim.MintOptions{Tenant: "brand-02", ExpiresIn: -time.Hour}, func(t *testing.T, tok metasim.Token) {
			if tok.Expires != now-3600 || tok.State != "expired" {
				t.Errorf("%+v", tok)
			}
		}},
		{"data access expiry", metasim.MintOptions{Tenant: "brand-02", DataAccessExpiresIn: day}, func(t *testing.T, tok metasim.Token) {
			if tok.DataAccessExpires != now+86400 {
				t.Errorf("%+v", tok)
			}
		}},
		{"ids count per tenant", metasim.MintOptions{Tenant: "brand-03"}, func(t *testing.T, tok metasim.Token) {
			if tok.ID != "tok-brand-03-1" || !slices.Equal(tok.Accounts, []string{e.brand("brand-03").IGUserID, e.brand("brand-03").PageID}) {
				t.Errorf("%+v", tok)
			}
		}},
	}
	values := map[string]string{e.token("platform"): "platform", e.token("tok-brand-03"): "tok-brand-03", testAppID + "|" + testAppSecret: "app"}
	admins := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.mint(t, tc.o)
			if prev, dup := values[tok.Value]; dup {
				t.Fatalf("value of %s repeats %s's", tok.ID, prev)
			}
			values[tok.Value] = tok.ID
			if !strings.HasPrefix(tok.Value, "EAAB") || len(tok.Value) != 64 {
				t.Errorf("value shape: %d chars", len(tok.Value))
			}
			wantScopes := defaultScopes
			if tc.o.Scopes != nil {
				wantScopes = tok.Scopes // checked by the case
			}
			if tok.Tenant != tc.o.Tenant || tok.IssuedAt != now || tok.Budget != budget || !slices.Equal(tok.Scopes, wantScopes) ||
				(tc.o.App == "" && tok.AppID != testAppID) || tok.GrantedBy == "" {
				t.Errorf("common fields: %+v", tok)
			}
			if tc.o.Tenant == "brand-02" && !slices.Equal(tok.Accounts, []string{b2.IGUserID, b2.PageID}) {
				t.Errorf("accounts %v, want brand-02's", tok.Accounts)
			}
			if tc.o.DataAccessExpiresIn == 0 && tok.DataAccessExpires != now+int64(90*day/time.Second) {
				t.Errorf("data access expiry %d, want 90 days", tok.DataAccessExpires)
			}
			if w, ok := e.tokenByID(tok.ID); !ok || w.Value != tok.Value || w.GrantedBy != tok.GrantedBy {
				t.Errorf("not in World().Tokens as minted: %+v", w)
			}
			admins[tc.o.Tenant+" "+tok.GrantedBy] = true
			tc.check(t, tok)
		})
	}
	if len(admins) != 2 {
		t.Errorf("one admin per brand grants its tokens: %v", admins)
	}

	for _, bad := range []metasim.MintOptions{
		{},
		{Tenant: "brand-09"},
		{Tenant: "brand-02", Kind: "forever"},
		{Tenant: "brand-02", App: "theirs"},
		{Tenant: "brand-02", Scopes: []string{"Instagram Basic"}},
		{Tenant: "brand-02", Scopes: []string{""}},
	} {
		n := len(e.sim.World().Tokens)
		if tok, err := e.sim.MintToken(bad); err == nil || !strings.HasPrefix(err.Error(), "metasim: mint token: ") {
			t.Errorf("MintToken(%+v) = %+v, %v; want an error", bad, tok, err)
		}
		if len(e.sim.World().Tokens) != n {
			t.Errorf("a refused MintToken(%+v) added a token", bad)
		}
	}
	if tok := e.mint(t, metasim.MintOptions{Tenant: "brand-02"}); tok.ID != "tok-brand-02-10" {
		t.Errorf("refused mints used up ids: next is %s", tok.ID)
	}
}

// A minted token reads exactly its brand, counts in its own budget, and
// shows in the request log under its id.
func TestMintedTokenReadsItsBrandWithItsBudget(t *testing.T) {
	e := newEnv(t, metasim.Config{TenantBudget: metasim.Budget{Calls: 6, Window: time.Hour}})
	b1, b2 := e.brand("brand-01"), e.brand("brand-02")
	user := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	page := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage})
	e.sim.ResetRequests()
	us := e.session(user.Value)

	cases := []struct {
		path     string
		wantCode int // 0: success
		wantID   string
	}{
		{"/" + b2.IGUserID + "/media", 0, ""},
		{"/" + b2.PostIDs[0] + "/comments", 0, ""},
		{"/" + b1.IGUserID + "/tags", 10, ""},
		{"/" + b1.PostIDs[0] + "/comments", 200, ""},
		{"/me", 0, user.GrantedBy},
		{"/" + user.GrantedBy, 0, user.GrantedBy},
		{"/me", 17, ""}, // the 7th call of a 6-call budget
	}
	for i, tc := range cases {
		res, err := us.Get(tc.path, nil)
		if tc.wantCode == 0 {
			if err != nil {
				t.Fatalf("call %d %s: %v", i+1, tc.path, err)
			}
			if tc.wantID != "" && str(res, "id") != tc.wantID {
				t.Errorf("%s: id %q, want %q", tc.path, str(res, "id"), tc.wantID)
			}
		} else if fe := fbError(t, err); fe.Code != tc.wantCode {
			t.Fatalf("call %d %s: code %d, want %d (%s)", i+1, tc.path, fe.Code, tc.wantCode, fe.Message)
		} else if tc.wantCode == 17 && !fe.IsTransient {
			t.Errorf("user limit not transient: %+v", fe)
		}
		u := res.UsageInfo()
		if u == nil || len(u.BusinessUseCase) != 0 {
			t.Errorf("call %d: a USER token has app usage and no BUC usage: %+v", i+1, u)
		} else if want := min(100, (i+1)*100/6); u.App.CallCount < want {
			t.Errorf("call %d: call_count %d, want >= %d", i+1, u.App.CallCount, want)
		}
	}
	// The platform token and the Page token have budgets of their own.
	if err := e.graphErr(e.token("platform"), "/me"); err != nil {
		t.Errorf("platform: %v", err)
	}
	res, err := e.session(page.Value).Get("/"+b2.IGUserID, nil)
	if err != nil || res.UsageInfo().BusinessUseCase[b2.IGUserID] == nil {
		t.Fatalf("page token: %v, usage %+v", err, res.UsageInfo())
	}
	if me, err := e.session(page.Value).Get("/me", nil); err != nil || str(me, "id") != b2.PageID {
		t.Errorf("/me of a minted page token: %v %v", me, err)
	}
	counts := map[string]int{}
	for _, r := range e.sim.Requests() {
		counts[r.TokenID]++
	}
	if counts[user.ID] != len(cases) || counts[page.ID] != 2 || counts["platform"] != 1 {
		t.Errorf("request log by token: %v", counts)
	}
}

func TestMintedTokenErrors(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, e *env) string // returns the token value to call with
		code    int
		subcode int
		msg     string
	}{
		{"minted expired", func(t *testing.T, e *env) string {
			return e.mint(t, metasim.MintOptions{Tenant: "brand-02", ExpiresIn: -time.Minute}).Value
		}, 190, 463, "Error validating access token: Session has expired on "},
		{"short-lived token after its life", func(t *testing.T, e *env) string {
			v := e.mint(t, metasim.MintOptions{Tenant: "brand-02"}).Value
			if err := e.graphErr(v, "/me"); err != nil {
				t.Fatalf("fresh token: %v", err)
			}
			e.clock.Advance(2*time.Hour + time.Second)
			return v
		}, 190, 463, "Session has expired"},
		{"another app's token", func(t *testing.T, e *env) string {
			return e.mint(t, metasim.MintOptions{Tenant: "brand-02", App: metasim.MintAppOther}).Value
		}, 190, 0, "Error validating access token: The access token was not issued for application " + testAppID},
		{"invalid", func(t *testing.T, e *env) string {
			tok := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong})
			e.sim.SetTokenState(tok.ID, metasim.TokenInvalid)
			return tok.Value
		}, 190, 460, "changed their password"},
		{"revoked", func(t *testing.T, e *env) string {
			tok := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage})
			e.sim.SetTokenState(tok.ID, metasim.TokenRevoked)
			return tok.Value
		}, 190, 458, "Error validating access token: The user has not authorized application " + testAppID + "."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, metasim.Config{})
			v := tc.setup(t, e)
			fe := fbError(t, e.graphErr(v, "/"+e.brand("brand-02").IGUserID))
			if fe.Code != tc.code || fe.ErrorSubcode != tc.subcode || fe.Type != "OAuthException" || !strings.Contains(fe.Message, tc.msg) {
				t.Fatalf("got %d/%d %q, want %d/%d containing %q", fe.Code, fe.ErrorSubcode, fe.Message, tc.code, tc.subcode, tc.msg)
			}
			if l := e.sim.Requests(); l[len(l)-1].Outcome != metasim.OutcomeTokenInvalid || l[len(l)-1].TokenID == "" {
				t.Errorf("logged as %+v", l[len(l)-1])
			}
		})
	}

	// Back to valid: an expired short-lived token is renewed for its own
	// lifetime, a revoked Page token works again and never expires.
	e := newEnv(t, metasim.Config{})
	short := e.mint(t, metasim.MintOptions{Tenant: "brand-02", ExpiresIn: -time.Hour})
	page := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage})
	e.sim.SetTokenState(page.ID, metasim.TokenRevoked)
	for _, id := range []string{short.ID, page.ID} {
		if err := e.sim.SetTokenState(id, metasim.TokenValid); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{short.Value, page.Value} {
		if err := e.graphErr(v, "/me"); err != nil {
			t.Errorf("valid again: %v", err)
		}
	}
	if tok, _ := e.tokenByID(short.ID); tok.State != "valid" || tok.Expires < e.sim.Now().Unix()+3600 || tok.Expires > e.sim.Now().Unix()+7200 {
		t.Errorf("renewed short-lived token: %+v", tok)
	}
	if tok, _ := e.tokenByID(page.ID); tok.State != "valid" || tok.Expires != 0 {
		t.Errorf("page token valid again: %+v", tok)
	}
}

func TestDebugTokenPerToken(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	b2, b3 := e.brand("brand-02"), e.brand("brand-03")
	short := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	long := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong, DataAccessExpiresIn: 30 * day})
	page := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage})
	other := e.mint(t, metasim.MintOptions{Tenant: "brand-02", App: metasim.MintAppOther})
	few := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Scopes: []string{"instagram_basic", "pages_read_engagement", "email"}})
	revoked := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong})
	e.sim.SetTokenState(revoked.ID, metasim.TokenRevoked)
	expired := e.mint(t, metasim.MintOptions{Tenant: "brand-02", ExpiresIn: -time.Second})
	premium, _ := e.tokenByID("tok-brand-03")
	platform, _ := e.tokenByID("platform")
	admin := short.GrantedBy

	targets := func(b metasim.Brand, scopes []string) map[string][]string {
		m := map[string][]string{}
		for _, s := range scopes {
			switch {
			case strings.HasPrefix(s, "instagram_"):
				m[s] = []string{b.IGUserID}
			case strings.HasPrefix(s, "pages_"):
				m[s] = []string{b.PageID}
			case s == "business_management":
				m[s] = nil
			}
		}
		return m
	}
	cases := []struct {
		name      string
		tok       metasim.Token
		typ       string
		appID     string
		userID    string
		profileID string
		scopes    []string
		granular  map[string][]string
		errCode   int // 0: is_valid
		errSub    int
	}{
		{"short-lived user", short, "USER", testAppID, admin, "", defaultScopes, targets(b2, defaultScopes), 0, 0},
		{"long-lived user", long, "USER", testAppID, admin, "", defaultScopes, targets(b2, defaultScopes), 0, 0},
		{"page", page, "PAGE", testAppID, admin, b2.PageID, defaultScopes, targets(b2, defaultScopes), 0, 0},
		{"other app", other, "USER", other.AppID, admin, "", defaultScopes, targets(b2, defaultScopes), 0, 0},
		{"fewer scopes", few, "USER", testAppID, admin, "", []string{"instagram_basic", "pages_read_engagement", "email"},
			map[string][]string{"instagram_basic": {b2.IGUserID}, "pages_read_engagement": {b2.PageID}}, 0, 0},
		{"revoked", revoked, "USER", testAppID, admin, "", defaultScopes, targets(b2, defaultScopes), 190, 458},
		{"expired", expired, "USER", testAppID, admin, "", defaultScopes, targets(b2, defaultScopes), 190, 463},
		{"premium page token", premium, "PAGE", testAppID, premium.GrantedBy, b3.PageID, defaultScopes, targets(b3, defaultScopes), 0, 0},
		{"platform", platform, "SYSTEM_USER", testAppID, platform.UserID, "", defaultScopes, nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.debugToken(t, tc.tok.Value)
			if d.Type != tc.typ || d.AppID != tc.appID || d.UserID != tc.userID || d.UserID == "" || d.ProfileID != tc.profileID || d.keys["profile_id"] != (tc.profileID != "") {
				t.Errorf("type %s app %s user %s profile %q; want %s %s %s %q", d.Type, d.AppID, d.UserID, d.ProfileID, tc.typ, tc.appID, tc.userID, tc.profileID)
			}
			if wantName := tc.appID == testAppID; (d.Application == ourAppName) != wantName || d.Application == "" {
				t.Errorf("application %q for app %s", d.Application, d.AppID)
			}
			if d.ExpiresAt != tc.tok.Expires || d.IssuedAt != tc.tok.IssuedAt || d.IssuedAt == 0 || d.DataAccessExpiresAt != tc.tok.DataAccessExpires {
				t.Errorf("times: expires %d issued %d data access %d; token %+v", d.ExpiresAt, d.IssuedAt, d.DataAccessExpiresAt, tc.tok)
			}
			if !slices.Equal(d.Scopes, tc.scopes) {
				t.Errorf("scopes %v, want %v", d.Scopes, tc.scopes)
			}
			if tc.granular != nil {
				got := map[string][]string{}
				for _, g := range d.GranularScopes {
					got[g.Scope] = g.TargetIDs
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.granular) {
					t.Errorf("granular_scopes %v, want %v", got, tc.granular)
				}
			}
			if d.IsValid != (tc.errCode == 0) || d.Error.Code != tc.errCode || d.Error.Subcode != tc.errSub || d.keys["error"] != (tc.errCode != 0) {
				t.Errorf("is_valid %v error %+v; want error %d/%d", d.IsValid, d.Error, tc.errCode, tc.errSub)
			}
		})
	}
	// A platform token's granular scopes name the brands it reads.
	if d := e.debugToken(t, platform.Value); len(d.GranularScopes) != len(defaultScopes) || len(d.GranularScopes[0].TargetIDs) != 3 {
		t.Errorf("platform granular scopes: %+v", d.GranularScopes)
	}
	// An unknown token: Meta's shape with the error inside data.
	if d := e.debugToken(t, "EAABunknown"); d.IsValid || d.Error.Code != 190 || d.keys["app_id"] {
		t.Errorf("unknown input token: %+v", d)
	}
	// huandu's Inspect turns the error inside data into an error.
	if _, err := e.session(revoked.Value).Inspect(); fbError(t, err).Code != 190 || !strings.Contains(err.Error(), "has not authorized application") {
		t.Errorf("Inspect of a revoked token: %v", err)
	}
}

func TestExchangeToken(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	b2 := e.brand("brand-02")
	short := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Scopes: []string{"instagram_basic", "instagram_manage_comments"}})
	shortDebug := e.debugToken(t, short.Value)

	for _, version := range []string{testVersion, ""} {
		t.Run("path version "+version, func(t *testing.T) {
			before := len(e.sim.World().Tokens)
			now := e.sim.Now().Unix()
			value, expires, err := e.oauthApp(testAppID, testAppSecret, version, nil).ExchangeToken(short.Value)
			if err != nil {
				t.Fatal(err)
			}
			if expires < 5183999 || expires > 5184000 {
				t.Errorf("expires_in %d, want 60 days", expires)
			}
			long, ok := e.tokenByValue(value)
			if !ok || value == short.Value || len(e.sim.World().Tokens) != before+1 {
				t.Fatalf("no new token for the exchanged value")
			}
			if want := fmt.Sprintf("tok-brand-02-%d", before-1); long.ID != want { // platform and tok-brand-03 come first
				t.Errorf("id %s, want %s", long.ID, want)
			}
			if long.Type != "USER" || long.Tenant != "brand-02" || long.ExchangedFrom != short.ID || long.GrantedBy != short.GrantedBy ||
				!slices.Equal(long.Scopes, short.Scopes) || long.Expires != now+int64(expires) || long.IssuedAt != now ||
				long.DataAccessExpires != short.DataAccessExpires || long.AppID != testAppID {
				t.Errorf("exchanged token %+v from %+v", long, short)
			}
			d := e.debugToken(t, value)
			if !d.IsValid || d.UserID != shortDebug.UserID || !slices.Equal(d.Scopes, shortDebug.Scopes) || d.ExpiresAt != long.Expires || d.Type != "USER" {
				t.Errorf("debug_token of the long-lived token: %+v", d)
			}
			if err := e.graphErr(value, "/"+b2.IGUserID+"/media"); err != nil {
				t.Errorf("long-lived token: %v", err)
			}
			log := e.sim.Requests()
			var l *metasim.Request
			for i := range log {
				if strings.HasSuffix(log[i].Path, "/oauth/access_token") {
					l = &log[i]
				}
			}
			wantPath := "/oauth/access_token"
			if version != "" {
				wantPath = "/" + version + wantPath
			}
			if l == nil || l.Path != wantPath || l.TokenID != short.ID || l.Status != 200 || l.Outcome != metasim.OutcomeOK {
				t.Errorf("request log entry %+v", l)
			}
		})
	}

	// A plain GET with the query string works too.
	q := url.Values{"grant_type": {"fb_exchange_token"}, "client_id": {testAppID}, "client_secret": {testAppSecret}, "fb_exchange_token": {short.Value}}
	resp, err := e.srv.Client().Get(e.srv.URL + "/" + testVersion + "/oauth/access_token?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if v, _ := got["access_token"].(string); resp.StatusCode != 200 || len(got) != 3 || got["token_type"] != "bearer" || got["expires_in"] != float64(5184000) || !strings.HasPrefix(v, "EAAB") {
		t.Errorf("GET exchange: %d %v", resp.StatusCode, got)
	}

	// The short-lived token keeps working until it expires; the long one after.
	if err := e.graphErr(short.Value, "/me"); err != nil {
		t.Errorf("short-lived token after the exchange: %v", err)
	}
	e.clock.Advance(2*time.Hour + time.Second)
	if err := e.graphErr(short.Value, "/me"); fbError(t, err).ErrorSubcode != 463 {
		t.Errorf("short-lived token after 2 h: %v", err)
	}
	if err := e.graphErr(got["access_token"].(string), "/me"); err != nil {
		t.Errorf("long-lived token after 2 h: %v", err)
	}
}

func TestExchangeTokenErrors(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	user := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	expired := e.mint(t, metasim.MintOptions{Tenant: "brand-02", ExpiresIn: -time.Minute})
	invalid := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	e.sim.SetTokenState(invalid.ID, metasim.TokenInvalid)
	revoked := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	e.sim.SetTokenState(revoked.ID, metasim.TokenRevoked)
	other := e.mint(t, metasim.MintOptions{Tenant: "brand-02", App: metasim.MintAppOther})
	page := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage})
	rec := &recorder{rt: e.srv.Client().Transport}
	client := &http.Client{Transport: rec}

	cases := []struct {
		name           string
		appID, secret  string
		input, inputID string
		code, subcode  int
		msg            string
	}{
		{"wrong client_secret", testAppID, "wrong-secret", user.Value, user.ID, 1, 0, "Error validating client secret."},
		{"wrong client_id", "100000000000009", testAppSecret, user.Value, user.ID, 1, 0, "Error validating client secret."},
		{"unknown token", testAppID, testAppSecret, "EAABunknowntoken", "", 190, 0, "Invalid OAuth access token"},
		{"expired token", testAppID, testAppSecret, expired.Value, expired.ID, 190, 463, "Session has expired"},
		{"invalid token", testAppID, testAppSecret, invalid.Value, invalid.ID, 190, 460, "changed their password"},
		{"revoked token", testAppID, testAppSecret, revoked.Value, revoked.ID, 190, 458, "has not authorized application " + testAppID},
		{"another app's token", testAppID, testAppSecret, other.Value, other.ID, 190, 0, otherPrefix},
		{"a page token", testAppID, testAppSecret, page.Value, page.ID, 190, 0, "user access token"},
		{"the platform token", testAppID, testAppSecret, e.token("platform"), "platform", 190, 0, "user access token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.sim.World().Tokens)
			_, _, err := e.oauthApp(tc.appID, tc.secret, testVersion, client).ExchangeToken(tc.input)
			fe := fbError(t, err)
			if fe.Code != tc.code || fe.ErrorSubcode != tc.subcode || fe.Type != "OAuthException" || fe.TraceID == "" || !strings.Contains(fe.Message, tc.msg) {
				t.Errorf("got %d/%d %s %q trace %q; want %d/%d %q", fe.Code, fe.ErrorSubcode, fe.Type, fe.Message, fe.TraceID, tc.code, tc.subcode, tc.msg)
			}
			if status, _ := rec.last(); status != 400 {
				t.Errorf("HTTP %d, want 400", status)
			}
			log := e.sim.Requests()
			if l := log[len(log)-1]; l.Path != "/"+testVersion+"/oauth/access_token" || l.TokenID != tc.inputID || l.Code != tc.code || l.Status != 400 {
				t.Errorf("logged as %+v", l)
			}
			if len(e.sim.World().Tokens) != n {
				t.Errorf("a refused exchange made a token")
			}
		})
	}

	// Missing or wrong parameters: code 100 (huandu always sends them all).
	full := url.Values{"grant_type": {"fb_exchange_token"}, "client_id": {testAppID}, "client_secret": {testAppSecret}, "fb_exchange_token": {user.Value}}
	for _, tc := range []struct{ drop, grant, msg string }{
		{"client_id", "", "Missing client_id parameter."},
		{"client_secret", "", "Missing client_secret parameter."},
		{"grant_type", "", "Missing grant_type parameter."},
		{"fb_exchange_token", "", "Missing fb_exchange_token parameter."},
		{"", "client_credentials", "Unsupported grant_type"},
	} {
		q := url.Values{}
		for k, v := range full {
			if k != tc.drop {
				q[k] = v
			}
		}
		if tc.grant != "" {
			q.Set("grant_type", tc.grant)
		}
		resp, err := e.srv.Client().PostForm(e.srv.URL+"/oauth/access_token", q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ans struct {
			Error struct {
				Message, Type string
				Code          int
				Trace         string `json:"fbtrace_id"`
			}
		}
		json.Unmarshal(body, &ans)
		if resp.StatusCode != 400 || ans.Error.Code != 100 || ans.Error.Type != "OAuthException" || ans.Error.Trace == "" || !strings.HasPrefix(ans.Error.Message, tc.msg) {
			t.Errorf("drop %q grant %q: %d %s", tc.drop, tc.grant, resp.StatusCode, body)
		}
	}

	raw, _ := json.Marshal(e.sim.Requests())
	for _, secret := range []string{user.Value, other.Value, page.Value, testAppSecret} {
		if strings.Contains(string(raw), secret) {
			t.Fatal("the request log holds a secret")
		}
	}
}

func TestTokenStateSideEndpoint(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	tok := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintUserLong})
	path := "/_sim/tokens/" + tok.ID
	// In order: each step starts from the state the one before left.
	steps := []struct {
		path, body string
		status     int
		state      string
		subcode    int // of a Graph call afterwards; -1 success
	}{
		{path, `{"state":"revoked"}`, 200, "revoked", 458},
		{path, `{"state":"valid"}`, 200, "valid", -1},
		{path, `{"state":"expired"}`, 200, "expired", 463},
		{path, `{"state":"invalid"}`, 200, "invalid", 460},
		{path, `{"state":"valid","usage_floor":10}`, 200, "valid", -1},
		{path, `{"state":"gone"}`, 400, "", -1},
		{path, `{"state":"revoked","color":"red"}`, 400, "", -1},
		{"/_sim/tokens/tok-brand-02-99", `{"state":"revoked"}`, 404, "", -1},
	}
	for _, st := range steps {
		status, body := e.post(t, st.path, st.body)
		if status != st.status {
			t.Fatalf("%s %s: %d %s", st.path, st.body, status, body)
		}
		if status == 200 {
			var got metasim.Token
			json.Unmarshal(body, &got)
			if got.ID != tok.ID || got.State != st.state || got.Value != "" {
				t.Errorf("%s: answered %s", st.body, body)
			}
		} else if !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: no error in %s", st.body, body)
		}
		err := e.graphErr(tok.Value, "/me")
		if st.subcode == -1 && err != nil {
			t.Errorf("after %s: %v", st.body, err)
		}
		if st.subcode > 0 && fbError(t, err).ErrorSubcode != st.subcode {
			t.Errorf("after %s: %v, want subcode %d", st.body, err, st.subcode)
		}
	}
}

func TestMintSideEndpoint(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	now := e.sim.Now().Unix()
	cases := []struct {
		body   string
		status int
		check  func(t *testing.T, tok metasim.Token)
	}{
		{`{"tenant":"brand-01","kind":"user_long"}`, 200, func(t *testing.T, tok metasim.Token) {
			if tok.ID != "tok-brand-01-1" || tok.Type != "USER" || tok.Expires != now+int64(60*day/time.Second) {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-01","kind":"page","scopes":[]}`, 200, func(t *testing.T, tok metasim.Token) {
			if tok.Type != "PAGE" || tok.Scopes == nil || len(tok.Scopes) != 0 {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-01","scopes":["instagram_basic"]}`, 200, func(t *testing.T, tok metasim.Token) {
			if !slices.Equal(tok.Scopes, []string{"instagram_basic"}) || tok.Type != "USER" {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-01","expires_in":"90m","data_access_expires_in":"24h"}`, 200, func(t *testing.T, tok metasim.Token) {
			if tok.Expires != now+5400 || tok.DataAccessExpires != now+86400 {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-01","expires_in":"-1h"}`, 200, func(t *testing.T, tok metasim.Token) {
			if tok.State != "expired" {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-01","app":"other"}`, 200, func(t *testing.T, tok metasim.Token) {
			if tok.AppID == testAppID {
				t.Errorf("%+v", tok)
			}
		}},
		{`{"tenant":"brand-09"}`, 400, nil},
		{`{"kind":"user_short"}`, 400, nil},
		{`{"tenant":"brand-01","kind":"forever"}`, 400, nil},
		{`{"tenant":"brand-01","expires_in":"soon"}`, 400, nil},
		{`{"tenant":"brand-01","data_access_expires_in":"90"}`, 400, nil},
		{`{"tenant":"brand-01","color":"red"}`, 400, nil},
		{`tenant=brand-01`, 400, nil},
	}
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			n := len(e.sim.World().Tokens)
			status, body := e.post(t, "/_sim/tokens", tc.body)
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
			if tc.check == nil {
				if !strings.Contains(string(body), `"error"`) || len(e.sim.World().Tokens) != n {
					t.Errorf("refused mint: %s, tokens %d -> %d", body, n, len(e.sim.World().Tokens))
				}
				return
			}
			var tok metasim.Token
			if err := json.Unmarshal(body, &tok); err != nil {
				t.Fatal(err)
			}
			if w, ok := e.tokenByID(tok.ID); !ok || w.Value != tok.Value || tok.Value == "" || tok.Tenant != "brand-01" {
				t.Fatalf("answer %s is not the world's token %+v", body, w)
			}
			tc.check(t, tok)
		})
	}
	// The value works, for a valid token of our app.
	_, body := e.post(t, "/_sim/tokens", `{"tenant":"brand-01"}`)
	var tok metasim.Token
	json.Unmarshal(body, &tok)
	if err := e.graphErr(tok.Value, "/"+e.brand("brand-01").IGUserID+"/tags"); err != nil {
		t.Errorf("minted over HTTP: %v", err)
	}
}

// deauthReceiver is an app's Deauthorize Callback URL.
type deauthReceiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	got    []*http.Request
	forms  []url.Values
}

func newDeauthReceiver(t *testing.T) *deauthReceiver {
	d := &deauthReceiver{}
	d.status.Store(200)
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		d.mu.Lock()
		d.got = append(d.got, r)
		d.forms = append(d.forms, form)
		d.mu.Unlock()
		w.WriteHeader(int(d.status.Load()))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *deauthReceiver) calls() ([]*http.Request, []url.Values) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*http.Request(nil), d.got...), append([]url.Values(nil), d.forms...)
}

func TestDeauthorize(t *testing.T) {
	recv := newDeauthReceiver(t)
	e := newEnv(t, metasim.Config{Speed: 60, DeauthorizeURL: recv.srv.URL + "/meta/deauthorize"})
	short := e.mint(t, metasim.MintOptions{Tenant: "brand-02"})
	longValue, _, err := e.oauthApp(testAppID, testAppSecret, testVersion, nil).ExchangeToken(short.Value)
	if err != nil {
		t.Fatal(err)
	}
	long, _ := e.tokenByValue(longValue)
	page := e.mint(t, metasim.MintOptions{Tenant: "brand-02", Kind: metasim.MintPage}) // another login
	e.clock.Advance(10 * time.Second)                                                  // 10 simulated minutes

	if err := e.sim.Deauthorize(short.ID); err != nil {
		t.Fatal(err)
	}
	reqs, forms := recv.calls()
	if len(reqs) != 1 {
		t.Fatalf("%d callback POSTs, want 1", len(reqs))
	}
	r, form := reqs[0], forms[0]
	if r.Method != http.MethodPost || r.URL.Path != "/meta/deauthorize" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || len(form) != 1 {
		t.Fatalf("callback %s %s %q form %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), form)
	}
	sr := form.Get("signed_request")
	sig, payload, ok := strings.Cut(sr, ".")
	if !ok || strings.ContainsAny(sr, "=+/") || sig == "" {
		t.Fatalf("signed_request %q is not <sig>.<payload> in unpadded base64url", sr)
	}
	var p map[string]any
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &p) != nil || len(p) != 3 {
		t.Fatalf("payload %s: %v", raw, err)
	}
	res, err := facebook.New(testAppID, testAppSecret).ParseSignedRequest(sr)
	if err != nil {
		t.Fatalf("huandu refuses the signed_request: %v", err)
	}
	var issued int64
	res.DecodeField("issued_at", &issued)
	if str(res, "user_id") != e.debugToken(t, short.Value).UserID || str(res, "user_id") != short.GrantedBy || str(res, "algorithm") != "HMAC-SHA256" {
		t.Errorf("payload %v", res)
	}
	if issued != e.sim.Now().Unix() || issued == e.clock.Now().Unix() {
		t.Errorf("issued_at %d, want the sim clock %d (not the wall clock %d)", issued, e.sim.Now().Unix(), e.clock.Now().Unix())
	}
	if _, err := facebook.New(testAppID, "wrong-secret").ParseSignedRequest(sr); err == nil {
		t.Error("a wrong app secret accepts the signed_request")
	}

	// The login's tokens are revoked; another login's and other tenants' are not.
	for _, tok := range []metasim.Token{short, long} {
		if err := e.graphErr(tok.Value, "/me"); fbError(t, err).ErrorSubcode != 458 {
			t.Errorf("%s after deauthorize: %v", tok.ID, err)
		}
		if d := e.debugToken(t, tok.Value); d.IsValid || d.Error.Code != 190 || d.Error.Subcode != 458 || !strings.Contains(d.Error.Message, "The user has not authorized application") {
			t.Errorf("debug_token of %s: %+v", tok.ID, d)
		}
		if w, _ := e.tokenByID(tok.ID); w.State != "revoked" {
			t.Errorf("%s state %s", tok.ID, w.State)
		}
	}
	for _, v := range []string{page.Value, e.token("tok-brand-03"), e.token("platform")} {
		if err := e.graphErr(v, "/me"); err != nil {
			t.Errorf("untouched token: %v", err)
		}
	}
}

func TestDeauthorizeCallbackFailures(t *testing.T) {
	recv := newDeauthReceiver(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	cases := []struct {
		name       string
		url        string
		status     int32 // the receiver's answer
		app        string
		wantHTTP   int // the side endpoint's answer
		wantPosts  int
		wantErrHas string
	}{
		{"callback answers 2xx", recv.srv.URL, 204, "", 200, 1, ""},
		{"callback answers 500", recv.srv.URL + "/cb?key=receiver-secret", 500, "", 502, 1, "answered 500"},
		{"callback unreachable", deadURL, 200, "", 502, 0, "deauthorize callback failed"},
		{"no callback URL", "", 200, "", 200, 0, ""},
		{"token of another app: its app is told, not ours", recv.srv.URL, 200, metasim.MintAppOther, 200, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recv.status.Store(tc.status)
			before, _ := recv.calls()
			e := newEnv(t, metasim.Config{DeauthorizeURL: tc.url})
			tok := e.mint(t, metasim.MintOptions{Tenant: "brand-02", App: tc.app})
			status, body := e.post(t, "/_sim/tokens/"+tok.ID+"/deauthorize", "")
			if status != tc.wantHTTP || !strings.Contains(string(body), tc.wantErrHas) {
				t.Fatalf("%d %s; want %d with %q", status, body, tc.wantHTTP, tc.wantErrHas)
			}
			for _, secret := range []string{tok.Value, testAppSecret, "receiver-secret"} {
				if strings.Contains(string(body), secret) {
					t.Fatalf("the answer holds a secret: %s", body)
				}
			}
			if after, _ := recv.calls(); len(after)-len(before) != tc.wantPosts {
				t.Errorf("%d POSTs, want %d", len(after)-len(before), tc.wantPosts)
			}
			if w, _ := e.tokenByID(tok.ID); w.State != "revoked" {
				t.Errorf("state %s, want revoked whatever the callback did", w.State)
			}
			// The Go method answers the same way.
			tok2 := e.mint(t, metasim.MintOptions{Tenant: "brand-02", App: tc.app})
			if err := e.sim.Deauthorize(tok2.ID); (err != nil) != (tc.wantHTTP != 200) {
				t.Errorf("Deauthorize: %v", err)
			}
		})
	}
	e := newEnv(t, metasim.Config{})
	if status, _ := e.post(t, "/_sim/tokens/tok-brand-02-7/deauthorize", ""); status != 404 {
		t.Errorf("unknown token: %d", status)
	}
	if err := e.sim.Deauthorize("nope"); err == nil {
		t.Error("Deauthorize of an unknown token")
	}
}
