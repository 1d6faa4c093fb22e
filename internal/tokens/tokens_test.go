package tokens_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
)

var metaNow = time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)

func days(n float64) time.Time { return metaNow.Add(time.Duration(n * float64(24*time.Hour))) }

func TestAssess(t *testing.T) {
	all := []string{"instagram_basic", "instagram_manage_comments", "pages_read_engagement", "pages_read_user_content", "pages_show_list"}
	valid := graph.TokenInfo{Valid: true, AppID: "1234", Type: "USER", Scopes: all, ExpiresAt: days(59), DataAccessExpiresAt: days(89), UserID: "7001"}
	with := func(f func(*graph.TokenInfo)) graph.TokenInfo {
		i := valid
		i.Scopes = slices.Clone(valid.Scopes)
		f(&i)
		return i
	}
	need := append(slices.Clone(tokens.InstagramScopes), tokens.PageScopes...)
	tests := []struct {
		name   string
		info   graph.TokenInfo
		state  store.TokenState
		reason string // a part of the reason
	}{
		{"long-lived user token", valid, store.TokenHealthy, ""},
		{"page token that never expires", with(func(i *graph.TokenInfo) { i.Type, i.ExpiresAt = "PAGE", time.Time{} }), store.TokenHealthy, ""},
		{"expires in 6 days", with(func(i *graph.TokenInfo) { i.ExpiresAt = days(6) }), store.TokenExpiring, "expires at"},
		{"data access expires first", with(func(i *graph.TokenInfo) { i.DataAccessExpiresAt = days(3) }), store.TokenExpiring, "data access expires"},
		{"expires in 8 days: not yet", with(func(i *graph.TokenInfo) { i.ExpiresAt = days(8) }), store.TokenHealthy, ""},
		{"expired", with(func(i *graph.TokenInfo) { i.ExpiresAt = days(-1) }), store.TokenInvalid, "expired at"},
		{"data access expired", with(func(i *graph.TokenInfo) { i.DataAccessExpiresAt = days(-1) }), store.TokenInvalid, "data access expired"},
		{"not valid: password changed", with(func(i *graph.TokenInfo) {
			i.Valid, i.ErrorCode, i.ErrorSubcode, i.ErrorMessage = false, 190, 460, "The session has been invalidated because the user changed their password"
		}), store.TokenInvalid, "changed their password (code 190/460)"},
		{"the user removed the app", with(func(i *graph.TokenInfo) {
			i.Valid, i.ErrorCode, i.ErrorSubcode, i.ErrorMessage = false, 190, 458, "The user has not authorized application 1234"
		}), store.TokenRevoked, "removed the app"},
		{"another app's token", with(func(i *graph.TokenInfo) { i.AppID = "9999" }), store.TokenInvalid, "issued for app 9999"},
		{"an app token", with(func(i *graph.TokenInfo) { i.Type = "APP" }), store.TokenInvalid, "app access token"},
		{"missing a scope", with(func(i *graph.TokenInfo) {
			i.Scopes = slices.DeleteFunc(i.Scopes, func(s string) bool { return s == "instagram_manage_comments" })
		}), store.TokenMissingScopes, "missing instagram_manage_comments"},
		{"missing scopes outrank expiring", with(func(i *graph.TokenInfo) { i.Scopes, i.ExpiresAt = []string{"instagram_basic"}, days(1) }),
			store.TokenMissingScopes, "missing instagram_manage_comments, pages_read_engagement, pages_read_user_content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tokens.Assess(tt.info, need, metaNow, tokens.Policy{AppID: "1234"})
			if h.State != tt.state || !strings.Contains(h.Reason, tt.reason) {
				t.Errorf("Assess = %s %q, want %s with %q", h.State, h.Reason, tt.state, tt.reason)
			}
			if h.MetaUserID != tt.info.UserID || !h.ExpiresAt.Equal(tt.info.ExpiresAt) || h.Type != tt.info.Type || !slices.Equal(h.Scopes, tt.info.Scopes) {
				t.Errorf("Assess did not keep what debug_token said: %+v", h)
			}
			if got, want := tokens.Usable(h), tt.state == store.TokenHealthy || tt.state == store.TokenExpiring; got != want {
				t.Errorf("Usable = %v, want %v", got, want)
			}
		})
	}
}

func TestAssessExpiringWindow(t *testing.T) {
	info := graph.TokenInfo{Valid: true, Type: "USER", ExpiresAt: days(10)}
	if s := tokens.Assess(info, nil, metaNow, tokens.Policy{ExpiringWithin: 14 * 24 * time.Hour}).State; s != store.TokenExpiring {
		t.Errorf("with a 14-day window, a token expiring in 10 days is %s, want expiring", s)
	}
	if s := tokens.Assess(info, nil, metaNow, tokens.Policy{}).State; s != store.TokenHealthy {
		t.Errorf("with the default 7-day window, a token expiring in 10 days is %s, want healthy", s)
	}
}

func TestRequiredScopes(t *testing.T) {
	ig := store.Account{ID: "17841400000000001", Type: store.AccountInstagram}
	page := store.Account{ID: "1000000000001", Type: store.AccountPage}
	tests := []struct {
		accounts []store.Account
		want     []string
	}{
		{[]store.Account{ig}, tokens.InstagramScopes},
		{[]store.Account{page}, tokens.PageScopes},
		{[]store.Account{page, ig}, append(slices.Clone(tokens.InstagramScopes), tokens.PageScopes...)},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := tokens.RequiredScopes(store.Tenant{ID: "t", Accounts: tt.accounts}); !slices.Equal(got, tt.want) {
			t.Errorf("RequiredScopes(%v) = %v, want %v", tt.accounts, got, tt.want)
		}
	}
}

func TestIsShortLived(t *testing.T) {
	tests := []struct {
		info graph.TokenInfo
		want bool
	}{
		{graph.TokenInfo{Type: "USER", ExpiresAt: metaNow.Add(90 * time.Minute)}, true},
		{graph.TokenInfo{Type: "USER", ExpiresAt: days(59)}, false},
		{graph.TokenInfo{Type: "USER"}, false}, // never expires
		{graph.TokenInfo{Type: "PAGE", ExpiresAt: metaNow.Add(time.Hour)}, false},
	}
	for _, tt := range tests {
		if got := tokens.IsShortLived(tt.info, metaNow); got != tt.want {
			t.Errorf("IsShortLived(%s, expires %v) = %v, want %v", tt.info.Type, tt.info.ExpiresAt, got, tt.want)
		}
	}
}
