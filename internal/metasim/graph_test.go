package metasim_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	facebook "github.com/huandu/facebook/v2"

	"github.com/socialproof/verifier/internal/metasim"
)

func TestCommentPagingFollowsAbsoluteNextNewestFirst(t *testing.T) {
	e := newEnv(t, metasim.Config{MediaPerBrand: 1, NoiseComments: -1, PlatformBudget: metasim.Budget{Calls: 10000, Window: time.Hour}})
	b := e.brand("brand-01")
	media := b.MediaIDs[0]
	// 130 genuine comment claims on the only media of brand-01.
	e.sim.GenerateClaims(130, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_comment": 1}, Tenants: []string{"brand-01"}})

	s := e.session(e.token("platform"))
	res, err := s.Get("/"+media+"/comments", facebook.Params{"fields": "id,text,timestamp,username,from{id,username},like_count", "limit": 100})
	if err != nil {
		t.Fatal(err)
	}
	p, err := res.Paging(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Data()); got != 50 {
		t.Fatalf("limit 100 gave %d items, want 50 (Meta's maximum)", got)
	}
	var next string
	res.DecodeField("paging.next", &next)
	if !strings.HasPrefix(next, e.srv.URL+"/"+testVersion+"/"+media+"/comments?") {
		t.Fatalf("next is not an absolute URL on the same path: %q", next)
	}
	for _, want := range []string{"access_token=", "appsecret_proof=", "fields=", "limit=50", "after="} {
		if !strings.Contains(next, want) {
			t.Errorf("next URL lacks %s: %s", want, next)
		}
	}

	var all []facebook.Result
	pages := 0
	for {
		pages++
		all = append(all, p.Data()...)
		noMore, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if noMore {
			break
		}
	}
	if len(all) < 130 || pages < 3 {
		t.Fatalf("got %d comments in %d pages, want >= 130 in >= 3", len(all), pages)
	}
	seen := map[string]bool{}
	var prev time.Time
	for i, c := range all {
		id := str(c, "id")
		if seen[id] {
			t.Fatalf("comment %s listed twice", id)
		}
		seen[id] = true
		ts := parseMetaTime(t, str(c, "timestamp"))
		if i > 0 && ts.After(prev) {
			t.Fatalf("comment %d (%s) is newer than the one before: not newest first", i, ts)
		}
		prev = ts
		if str(c, "username") == "" || str(c, "from", "username") != str(c, "username") || str(c, "from", "id") == "" {
			t.Fatalf("comment lacks username/from: %v", c)
		}
	}
	// The last page has cursors but no next.
	var count int
	cres, err := s.Get("/"+media, facebook.Params{"fields": "comments_count"})
	if err != nil {
		t.Fatal(err)
	}
	cres.DecodeField("comments_count", &count)
	if count != len(all) {
		t.Fatalf("comments_count %d, paged %d", count, len(all))
	}

	// Deleted comments disappear; edited ones change text.
	if err := e.sim.DeleteComment(str(all[0], "id")); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.EditComment(str(all[1], "id"), "edited text"); err != nil {
		t.Fatal(err)
	}
	after := getAll(t, s, "/"+media+"/comments", facebook.Params{"fields": "id,text", "limit": 50})
	if len(after) != len(all)-1 || str(after[0], "id") != str(all[1], "id") || str(after[0], "text") != "edited text" {
		t.Fatalf("delete/edit not reflected: %d items, first %v", len(after), after[0])
	}
	if _, err := s.Get("/"+str(all[0], "id"), nil); fbError(t, err).ErrorSubcode != 33 {
		t.Fatalf("deleted comment still readable: %v", err)
	}
}

func TestEdgesAndFields(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	b := e.brand("brand-01")
	s := e.session(e.token("platform"))

	// Facebook post comments and reactions.
	cs := getAll(t, s, "/"+b.PostIDs[0]+"/comments", facebook.Params{"fields": "id,message,created_time,from{id,name}"})
	for _, c := range cs {
		if str(c, "message") == "" || str(c, "from", "name") == "" || str(c, "created_time") == "" {
			t.Fatalf("bad post comment %v", c)
		}
	}
	rs := getAll(t, s, "/"+b.PostIDs[0]+"/reactions", nil)
	types := map[string]bool{"LIKE": true, "LOVE": true, "WOW": true, "HAHA": true, "SAD": true, "ANGRY": true, "CARE": true}
	for _, r := range rs {
		if !types[str(r, "type")] || str(r, "name") == "" || str(r, "id") == "" {
			t.Fatalf("bad reaction %v", r)
		}
	}
	// Tags.
	tags := getAll(t, s, "/"+b.IGUserID+"/tags", facebook.Params{"fields": "id,username,caption,timestamp,media_type,permalink"})
	if len(tags) == 0 {
		t.Fatal("no tagged media")
	}
	for _, m := range tags {
		if str(m, "username") == "" || !strings.HasPrefix(str(m, "permalink"), "https://www.instagram.com/p/") || str(m, "media_type") == "" {
			t.Fatalf("bad tagged media %v", m)
		}
	}
	// Plain IG user fields.
	u, err := s.Get("/"+b.IGUserID, facebook.Params{"fields": "id,username"})
	if err != nil || str(u, "username") != b.IGUsername || str(u, "id") != b.IGUserID {
		t.Fatalf("ig user: %v %v", u, err)
	}
	// Default fields of IG comments: timestamp, text, id.
	res, err := s.Get("/"+b.MediaIDs[0]+"/comments", nil)
	if err != nil {
		t.Fatal(err)
	}
	var data []map[string]any
	res.DecodeField("data", &data)
	if len(data) > 0 {
		if _, ok := data[0]["text"]; !ok || len(data[0]) != 3 {
			t.Fatalf("default comment fields: %v", data[0])
		}
	}
	// Unknown field and syntax errors.
	_, err = s.Get("/"+b.MediaIDs[0]+"/comments", facebook.Params{"fields": "id,bogus"})
	if fe := fbError(t, err); fe.Code != 100 || !strings.Contains(fe.Message, "nonexisting field (bogus)") {
		t.Fatalf("unknown field: %+v", fe)
	}
	_, err = s.Get("/"+b.MediaIDs[0]+"/comments", facebook.Params{"fields": "from{id"})
	if fe := fbError(t, err); fe.Code != 2500 {
		t.Fatalf("syntax error: %+v", fe)
	}
	// /me for the platform token and a Page token.
	id, err := s.User()
	if err != nil || id == "" {
		t.Fatalf("/me: %q %v", id, err)
	}
	pb := e.brand("brand-03")
	me, err := e.session(e.token("tok-brand-03")).Get("/me", nil)
	if err != nil || str(me, "id") != pb.PageID || str(me, "name") != pb.Name {
		t.Fatalf("/me of page token: %v %v", me, err)
	}
	// No version in the path.
	mac := hmac.New(sha256.New, []byte(testAppSecret))
	mac.Write([]byte(e.token("platform")))
	resp, err := http.Get(e.srv.URL + "/me?access_token=" + e.token("platform") + "&appsecret_proof=" + hex.EncodeToString(mac.Sum(nil)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "Unknown path components") {
		t.Fatalf("unversioned path: %d %s", resp.StatusCode, body)
	}
}

func TestMentions(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	b := e.brand("brand-01")
	s := e.session(e.token("platform"))
	claims := e.sim.GenerateClaims(20, metasim.ClaimOptions{FraudRate: -1, Kinds: map[string]float64{"ig_mention": 1}, Tenants: []string{"brand-01"}})
	var c struct{ Target, Handle, User string }
	json.Unmarshal(claims[0].Line, &c)

	res, err := s.Get("/"+b.IGUserID, facebook.Params{"fields": fmt.Sprintf("mentioned_media.media_id(%s){caption,username,timestamp,media_type,id}", c.Target)})
	if err != nil {
		t.Fatal(err)
	}
	if str(res, "id") != b.IGUserID || !strings.EqualFold(str(res, "mentioned_media", "username"), c.Handle) ||
		!strings.Contains(strings.ToLower(str(res, "mentioned_media", "caption")), "@"+b.IGUsername) {
		t.Fatalf("mentioned_media: %v", res)
	}
	// The claimant's media is not readable directly.
	if _, err := s.Get("/"+c.Target, nil); fbError(t, err).ErrorSubcode != 33 {
		t.Fatalf("user media readable directly: %v", err)
	}
	// A media that does not mention the brand: brand-02's own media.
	other := e.brand("brand-02").MediaIDs[0]
	_, err = s.Get("/"+b.IGUserID, facebook.Params{"fields": "mentioned_media.media_id(" + other + "){caption}"})
	if fe := fbError(t, err); fe.Code != 100 || fe.ErrorSubcode != 33 {
		t.Fatalf("no mention: %+v", fe)
	}
	// mentioned_comment.
	cid, err := e.sim.AddIGComment(c.Target, c.User, "thanks @"+strings.ToUpper(b.IGUsername)+" !")
	if err != nil {
		t.Fatal(err)
	}
	res, err = s.Get("/"+b.IGUserID, facebook.Params{"fields": "mentioned_comment.comment_id(" + cid + "){text,timestamp,username,id}"})
	if err != nil || str(res, "mentioned_comment", "id") != cid || str(res, "mentioned_comment", "username") == "" {
		t.Fatalf("mentioned_comment: %v %v", res, err)
	}
	cid2, _ := e.sim.AddIGComment(c.Target, c.User, "thanks @"+b.IGUsername+"_fans")
	_, err = s.Get("/"+b.IGUserID, facebook.Params{"fields": "mentioned_comment.comment_id(" + cid2 + "){text}"})
	if fe := fbError(t, err); fe.ErrorSubcode != 33 {
		t.Fatalf("near-miss mention accepted: %+v", fe)
	}
}

func TestErrorClasses(t *testing.T) {
	e := newEnv(t, metasim.Config{NoPlatformAccess: []string{"brand-02"}})
	b1, b2 := e.brand("brand-01"), e.brand("brand-02")
	plat := e.session(e.token("platform"))

	check := func(name string, err error, code, sub int, transient bool, typ string) {
		t.Helper()
		fe := fbError(t, err)
		if fe.Code != code || fe.ErrorSubcode != sub || fe.IsTransient != transient || (typ != "" && fe.Type != typ) || fe.TraceID == "" {
			t.Errorf("%s: got code %d sub %d transient %v type %s trace %q; want %d/%d/%v/%s", name, fe.Code, fe.ErrorSubcode, fe.IsTransient, fe.Type, fe.TraceID, code, sub, transient, typ)
		}
	}
	lastStatus := func() (int, string) {
		r := e.sim.Requests()
		return r[len(r)-1].Status, r[len(r)-1].Outcome
	}

	_, err := e.session("EAABnotatoken").Get("/"+b1.MediaIDs[0]+"/comments", nil)
	check("unknown token", err, 190, 0, false, "OAuthException")
	if st, oc := lastStatus(); st != 400 || oc != "token_invalid" {
		t.Errorf("unknown token logged %d %s", st, oc)
	}

	_, err = plat.Get("/12345678901234567", nil)
	check("not found", err, 100, 33, false, "GraphMethodException")
	if fe := fbError(t, err); !strings.HasPrefix(fe.Message, "Unsupported get request. Object with ID '12345678901234567' does not exist") {
		t.Errorf("not found message: %s", fe.Message)
	}
	if st, oc := lastStatus(); st != 400 || oc != "not_found" {
		t.Errorf("not found logged %d %s", st, oc)
	}

	_, err = plat.Get("/"+b2.IGUserID+"/tags", nil)
	check("ig permission", err, 10, 0, false, "OAuthException")
	if fe := fbError(t, err); fe.Message != "(#10) Application does not have permission for this action" {
		t.Errorf("ig permission message: %s", fe.Message)
	}
	if st, oc := lastStatus(); st != 403 || oc != "permission" {
		t.Errorf("permission logged %d %s", st, oc)
	}
	_, err = plat.Get("/"+b2.PostIDs[0]+"/comments", nil)
	check("page permission", err, 200, 0, false, "OAuthException")
	_, err = plat.Get("/"+b2.MediaIDs[0]+"/comments", nil)
	check("ig media permission", err, 10, 0, false, "")
	// The premium tenant's own token reads only its own brand.
	_, err = e.session(e.token("tok-brand-03")).Get("/"+b1.MediaIDs[0]+"/comments", nil)
	check("tenant token on another brand", err, 10, 0, false, "")
	// Granting access at run time.
	if err := e.sim.SetPlatformAccess("brand-02", true); err != nil {
		t.Fatal(err)
	}
	if _, err := plat.Get("/"+b2.IGUserID+"/tags", nil); err != nil {
		t.Errorf("after grant: %v", err)
	}

	// appsecret_proof missing / wrong.
	_, err = e.sessionWith(facebook.New(testAppID, testAppSecret), e.token("platform"), false).Get("/me", nil)
	check("proof missing", err, 100, 0, false, "GraphMethodException")
	if fe := fbError(t, err); fe.Message != "API calls from the server require an appsecret_proof argument" {
		t.Errorf("proof missing message: %s", fe.Message)
	}
	_, err = e.sessionWith(facebook.New(testAppID, "wrong-secret"), e.token("platform"), true).Get("/me", nil)
	check("proof invalid", err, 100, 0, false, "GraphMethodException")
	if fe := fbError(t, err); fe.Message != "Invalid appsecret_proof provided in the API argument" {
		t.Errorf("proof invalid message: %s", fe.Message)
	}

	// Token states.
	if err := e.sim.SetTokenState("tok-brand-03", metasim.TokenExpired); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	tenant := e.session(e.token("tok-brand-03"))
	_, err = tenant.Get("/me", nil)
	check("expired", err, 190, 463, false, "OAuthException")
	if fe := fbError(t, err); !strings.HasPrefix(fe.Message, "Error validating access token: Session has expired on Saturday, 28-Nov-26 04:00:00 PST. The current time is Saturday, 28-Nov-26 05:00:00 PST.") {
		t.Errorf("expired message: %s", fe.Message)
	}
	e.sim.SetTokenState("tok-brand-03", metasim.TokenInvalid)
	_, err = tenant.Get("/me", nil)
	check("password changed", err, 190, 460, false, "OAuthException")
	e.sim.SetTokenState("tok-brand-03", metasim.TokenValid)
	if _, err := tenant.Get("/me", nil); err != nil {
		t.Errorf("valid again: %v", err)
	}

	// Faults.
	e.sim.SetFaults(metasim.Faults{ErrorRate: 1})
	_, err = plat.Get("/me", nil)
	check("fault", err, 2, 0, true, "OAuthException")
	if st, oc := lastStatus(); (st != 500 && st != 503) || oc != "fault" {
		t.Errorf("fault logged %d %s", st, oc)
	}
	e.sim.SetFaults(metasim.Faults{})
}

func TestLatencyRespectsContext(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	e.sim.SetFaults(metasim.Faults{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.session(e.token("platform")).WithContext(ctx).Get("/me", nil)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("latency did not respect the context: %v after %v", err, time.Since(start))
	}
	e.sim.SetFaults(metasim.Faults{Latency: 20 * time.Millisecond})
	start = time.Now()
	if _, err := e.session(e.token("platform")).Get("/me", nil); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("latency not applied: %v after %v", err, time.Since(start))
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range e.sim.Requests() {
			if r.Outcome == metasim.OutcomeCanceled {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("canceled call not logged")
}

// Latency spikes: a share of calls waits SpikeLatency, the others answer
// at once; a client that stops waiting (its timeout) ends the spike.
func TestLatencySpikes(t *testing.T) {
	e := newEnv(t, metasim.Config{PlatformBudget: metasim.Budget{Calls: 100_000, Window: time.Hour}})
	e.sim.SetFaults(metasim.Faults{SpikeRate: 0.5, SpikeLatency: 5 * time.Second})
	slow, fast := 0, 0
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := e.session(e.token("platform")).WithContext(ctx).Get("/me", nil)
		cancel()
		if err != nil {
			slow++
		} else {
			fast++
		}
	}
	if slow < 8 || fast < 8 {
		t.Fatalf("spike rate 0.5: %d slow, %d fast of 40", slow, fast)
	}
	deadline := time.Now().Add(2 * time.Second)
	for canceled := 0; canceled < slow; {
		canceled = 0
		for _, r := range e.sim.Requests() {
			if r.Outcome == metasim.OutcomeCanceled {
				canceled++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spiked calls logged canceled, want %d", canceled, slow)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.sim.SetFaults(metasim.Faults{})
	start := time.Now()
	if _, err := e.session(e.token("platform")).Get("/me", nil); err != nil || time.Since(start) > time.Second {
		t.Fatalf("spikes off: %v after %v", err, time.Since(start))
	}
}

func TestUsageHeaders(t *testing.T) {
	e := newEnv(t, metasim.Config{
		PlatformBudget: metasim.Budget{Calls: 10, Window: time.Hour},
		TenantBudget:   metasim.Budget{Calls: 20, Window: 24 * time.Hour},
	})
	plat := e.session(e.token("platform"))
	var res facebook.Result
	var err error
	for i := 0; i < 3; i++ {
		if res, err = plat.Get("/me", nil); err != nil {
			t.Fatal(err)
		}
	}
	u := res.UsageInfo()
	if u == nil || u.App.CallCount != 30 || len(u.BusinessUseCase) != 0 {
		t.Fatalf("platform usage after 3 of 10 calls: %+v", u)
	}
	// A usage floor: someone else spends 50%.
	e.sim.SetUsageFloor("platform", 50)
	res, _ = plat.Get("/me", nil)
	if got := res.UsageInfo().App.CallCount; got != 90 {
		t.Fatalf("usage with floor 50 after 4 calls: %d, want 90", got)
	}
	res, err = plat.Get("/me", nil) // the 5th and last call the floor leaves
	if err != nil || res.UsageInfo().App.CallCount != 100 {
		t.Fatalf("5th call with floor 50: %v %+v", err, res.UsageInfo())
	}
	res, err = plat.Get("/me", nil)
	if err == nil || fbError(t, err).Code != 4 || res.UsageInfo().App.CallCount < 100 {
		t.Fatalf("floor 50 should leave 5 calls: %v %+v", err, res.UsageInfo())
	}

	b := e.brand("brand-03")
	ten := e.session(e.token("tok-brand-03"))
	res, err = ten.Get("/"+b.MediaIDs[0]+"/comments", nil)
	if err != nil {
		t.Fatal(err)
	}
	u = res.UsageInfo()
	ig := u.BusinessUseCase[b.IGUserID]
	if len(ig) != 1 || ig[0].Type != "instagram" || ig[0].CallCount != 5 || ig[0].EstimatedTimeToRegainAccess != 0 || u.App.CallCount != 5 {
		t.Fatalf("BUC usage after 1 of 20 IG calls: %+v %+v", u, ig)
	}
	res, err = ten.Get("/"+b.PostIDs[0]+"/reactions", nil)
	if err != nil {
		t.Fatal(err)
	}
	pg := res.UsageInfo().BusinessUseCase[b.PageID]
	if len(pg) != 1 || pg[0].Type != "pages" || pg[0].CallCount != 10 {
		t.Fatalf("BUC usage on a Page endpoint: %+v", res.UsageInfo().BusinessUseCase)
	}
	// Error answers carry the headers too.
	res, err = ten.Get("/12345678901234567", nil)
	if err == nil || res.UsageInfo() == nil || res.UsageInfo().App.CallCount != 15 {
		t.Fatalf("usage on an error answer: %v %+v", err, res.UsageInfo())
	}
}

func TestThrottlingAndRecovery(t *testing.T) {
	e := newEnv(t, metasim.Config{
		PlatformBudget: metasim.Budget{Calls: 5, Window: time.Hour},
		TenantBudget:   metasim.Budget{Calls: 5, Window: time.Hour},
	})
	plat := e.session(e.token("platform"))
	for i := 0; i < 5; i++ {
		if _, err := plat.Get("/me", nil); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	res, err := plat.Get("/me", nil)
	fe := fbError(t, err)
	if fe.Code != 4 || !fe.IsTransient || fe.Message != "(#4) Application request limit reached" || res.UsageInfo().App.CallCount < 100 {
		t.Fatalf("6th call: %+v usage %+v", fe, res.UsageInfo())
	}
	log := e.sim.Requests()
	if l := log[len(log)-1]; l.Outcome != "throttled" || l.Code != 4 || l.Status != 400 || l.TokenID != "platform" {
		t.Fatalf("throttled call logged as %+v", l)
	}
	e.clock.Advance(30 * time.Minute)
	if _, err := plat.Get("/me", nil); err == nil || fbError(t, err).Code != 4 {
		t.Fatalf("still throttled after 30 min: %v", err)
	}
	e.clock.Advance(31 * time.Minute) // the first 6 calls left the window
	res, err = plat.Get("/me", nil)
	if err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if got := res.UsageInfo().App.CallCount; got != 40 { // the call at +30 min and this one
		t.Fatalf("usage after recovery: %d, want 40", got)
	}

	// BUC token: 80002 on IG, 80001 on Pages, regain time in minutes.
	b := e.brand("brand-03")
	ten := e.session(e.token("tok-brand-03"))
	for i := 0; i < 5; i++ {
		if _, err := ten.Get("/"+b.IGUserID, nil); err != nil {
			t.Fatal(err)
		}
	}
	res, err = ten.Get("/"+b.IGUserID+"/tags", nil)
	if fe := fbError(t, err); fe.Code != 80002 || !fe.IsTransient {
		t.Fatalf("IG BUC throttle: %+v", fe)
	}
	if r := res.UsageInfo().BusinessUseCase[b.IGUserID]; len(r) != 1 || r[0].EstimatedTimeToRegainAccess != 60 || r[0].CallCount < 100 {
		t.Fatalf("regain: %+v", r[0])
	}
	_, err = ten.Get("/"+b.PostIDs[0]+"/comments", nil)
	if fe := fbError(t, err); fe.Code != 80001 {
		t.Fatalf("Page BUC throttle: %+v", fe)
	}

	// Manual throttle; calls during it extend it.
	e.clock.Advance(2 * time.Hour)
	if err := e.sim.Throttle("platform", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := plat.Get("/me", nil); fbError(t, err).Code != 4 {
		t.Fatal("manual throttle not applied")
	}
	if err := e.sim.Throttle("tok-brand-03", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	res, err = ten.Get("/"+b.IGUserID, nil)
	if r := res.UsageInfo().BusinessUseCase[b.IGUserID]; err == nil || r[0].EstimatedTimeToRegainAccess < 10 || r[0].EstimatedTimeToRegainAccess > 11 {
		t.Fatalf("manual regain: %v %+v", err, r)
	}
	e.clock.Advance(11 * time.Minute)
	if _, err := plat.Get("/me", nil); err != nil {
		t.Fatalf("after the manual block: %v", err)
	}
}

func TestSpeedScalesWindows(t *testing.T) {
	e := newEnv(t, metasim.Config{Speed: 60, PlatformBudget: metasim.Budget{Calls: 2, Window: time.Hour}})
	plat := e.session(e.token("platform"))
	plat.Get("/me", nil)
	plat.Get("/me", nil)
	if _, err := plat.Get("/me", nil); err == nil {
		t.Fatal("not throttled")
	}
	e.clock.Advance(61 * time.Second) // 61 simulated minutes
	if _, err := plat.Get("/me", nil); err != nil {
		t.Fatalf("window did not run 60x faster: %v", err)
	}
	if d := e.sim.Now().Sub(e.world.Start); d != 61*time.Minute {
		t.Fatalf("sim clock advanced %v", d)
	}
}

func TestDebugToken(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	data, err := e.session(e.token("platform")).Inspect()
	if err != nil {
		t.Fatal(err)
	}
	var valid bool
	data.DecodeField("is_valid", &valid)
	if !valid || str(data, "type") != "SYSTEM_USER" || str(data, "app_id") != testAppID || str(data, "user_id") == "" {
		t.Fatalf("platform token: %v", data)
	}
	var scopes []string
	data.DecodeField("scopes", &scopes)
	if len(scopes) == 0 {
		t.Fatal("no scopes")
	}
	data, err = e.session(e.token("tok-brand-03")).Inspect()
	if err != nil || str(data, "type") != "PAGE" || str(data, "profile_id") != e.brand("brand-03").PageID {
		t.Fatalf("page token: %v %v", data, err)
	}
	e.sim.SetTokenState("tok-brand-03", metasim.TokenExpired)
	_, err = e.session(e.token("tok-brand-03")).Inspect()
	if fe := fbError(t, err); fe.Code != 190 || !strings.Contains(fe.Message, "Session has expired") {
		t.Fatalf("expired token: %+v", fe)
	}
	// The raw answer keeps is_valid false with the error inside data.
	res, err := e.session(e.token("platform")).Get("/debug_token", facebook.Params{"input_token": e.token("tok-brand-03")})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		IsValid bool `json:"is_valid"`
		Error   struct {
			Code    int
			Subcode int
		}
	}
	res.DecodeField("data", &d)
	if d.IsValid || d.Error.Code != 190 || d.Error.Subcode != 463 {
		t.Fatalf("debug_token of an expired token: %+v", d)
	}
	_, err = e.session("EAABgarbage").Inspect()
	if fe := fbError(t, err); fe.Code != 190 {
		t.Fatalf("unknown input token: %+v", fe)
	}
}

func TestRequestLogAndAuthorizationHeader(t *testing.T) {
	e := newEnv(t, metasim.Config{})
	e.sim.ResetRequests()
	b := e.brand("brand-01")
	s := e.session(e.token("platform"))
	s.UseAuthorizationHeader()
	all := getAll(t, s, "/"+b.MediaIDs[0]+"/comments", facebook.Params{"limit": 5})
	if len(all) == 0 {
		t.Fatal("no comments")
	}
	e.session("EAABnope").Get("/me", nil)
	log := e.sim.Requests()
	if len(log) < 2 {
		t.Fatalf("log: %+v", log)
	}
	for _, r := range log[:len(log)-1] {
		if r.TokenID != "platform" || r.Path != "/"+testVersion+"/"+b.MediaIDs[0]+"/comments" || r.Status != 200 || r.Outcome != "ok" || r.Time.IsZero() {
			t.Fatalf("log entry %+v", r)
		}
	}
	if l := log[len(log)-1]; l.TokenID != "" || l.Code != 190 || l.Outcome != "token_invalid" {
		t.Fatalf("unknown-token entry %+v", l)
	}
	raw, _ := json.Marshal(log)
	if strings.Contains(string(raw), e.token("platform")) {
		t.Fatal("the request log holds a token value")
	}
}
