package systemtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/workflows"
)

// The platform API in front of the running engine: claims submitted through
// it are decided by the engine (on honor here, so the audit has provisional
// approvals to check), the platform follows the verdict feed page by page
// with its cursor, the audit's revocations come through the feed, and
// another tenant's key sees none of it.
func TestPlatformAPIWithTheEngine(t *testing.T) {
	w := systemtest.StartWorld(t, metasim.Config{Brands: 3, Premium: 1}, func(c *config.Config) { c.Mode = workflows.ModeHonor })
	ctx := context.Background()
	standard := w.TenantsBy(store.TierStandard)
	tenant, other := standard[0], standard[1]
	keys := map[string]string{tenant: "key-" + tenant + "-0123456789abcdef0123456789abcdef", other: "key-" + other + "-0123456789abcdef0123456789abcdef"}
	for tn, k := range keys {
		if err := w.St.AddAPIKey(ctx, store.APIKey{Tenant: tn, Name: "test", Key: k, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer((&api.Server{Store: w.St}).Handler())
	t.Cleanup(srv.Close)
	call := func(method, path, key string, body, out any) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}

	claims := w.Generate(t, 150, 0.2, tenant)
	var sub struct{ Results []api.SubmitResult }
	if status := call("POST", "/v1/claims", keys[tenant], map[string]any{"claims": claims}, &sub); status != 200 {
		t.Fatalf("submit: %d", status)
	}
	ids := map[int64]bool{}
	for _, r := range sub.Results {
		if r.Status != api.StatusAccepted {
			t.Fatalf("claim %d: %+v", r.Index, r)
		}
		ids[r.ID] = true
	}
	w.Total = len(ids)

	// The platform's loop: page through the feed from its last cursor.
	latest := map[int64]api.ClaimView{}
	follow := func(cursor string) (next string, pages, revoked int) {
		t.Helper()
		for {
			var feed api.Feed
			if status := call("GET", "/v1/verdicts?limit=40&after="+cursor, keys[tenant], nil, &feed); status != 200 {
				t.Fatalf("feed: %d", status)
			}
			if len(feed.Verdicts) == 0 {
				return cursor, pages, revoked
			}
			pages++
			for _, v := range feed.Verdicts {
				if !ids[v.ID] || v.Tenant != tenant {
					t.Fatalf("feed item not the tenant's own: %+v", v)
				}
				if v.Verdict == store.VerdictRevoked {
					revoked++
					if prev := latest[v.ID]; prev.Verdict != v.RevokedFrom {
						t.Errorf("claim %d revoked from %s, but the feed had it as %q", v.ID, v.RevokedFrom, prev.Verdict)
					}
				}
				latest[v.ID] = v
			}
			cursor = feed.Next
		}
	}
	w.WaitDecided(t, 2*time.Minute)
	cursor, pages, revoked := follow("")
	if len(latest) != len(ids) || pages < 4 || revoked != 0 {
		t.Fatalf("the feed gave %d of %d decided claims in %d pages (%d revoked before any audit)", len(latest), len(ids), pages, revoked)
	}
	w.StartAudit(t)
	w.WaitAudited(t, 2*time.Minute)
	_, _, revoked = follow(cursor)
	if revoked == 0 {
		t.Fatal("the audit's revocations did not come through the feed")
	}
	var one api.ClaimView
	for id := range ids {
		if status := call("GET", fmt.Sprintf("/v1/claims/%d", id), keys[tenant], nil, &one); status != 200 || one.Verdict != latest[id].Verdict {
			t.Errorf("GET claim %d: %d %+v, feed says %s", id, status, one, latest[id].Verdict)
		}
		var e map[string]any
		if status := call("GET", fmt.Sprintf("/v1/claims/%d", id), keys[other], nil, &e); status != 404 {
			t.Errorf("another tenant's key reads claim %d: %d", id, status)
		}
		break
	}
	var others api.Feed
	if call("GET", "/v1/verdicts", keys[other], nil, &others); len(others.Verdicts) != 0 {
		t.Errorf("another tenant's feed shows %d verdicts", len(others.Verdicts))
	}
	t.Logf("FIGURES platform API: %d claims submitted, fed back in %d pages, then %d revocations after the audit", len(ids), pages, revoked)
}
