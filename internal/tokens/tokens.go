// Package tokens is everything about Meta access tokens: which token reads
// a tenant's evidence, opening it for a call, connecting tenants' own
// tokens, and their health.
//
//   - tokens.go is the pure core (no Temporal imports): which scopes a
//     tenant's accounts need, and what state a token is in from what
//     /debug_token says about it.
//   - sessions.go opens a Graph session for a token known by id, inside the
//     activity making the call: values never travel through Temporal.
//   - connect.go connects a tenant's own token (the platform API, `starter
//     tokens connect`) and takes Meta's deauthorization callback.
//   - health.go is the TokenHealth workflow (the `token-health` Schedule),
//     and activities.go its activities and the Governor's token probe.
//
// Calls with the app token (debug_token) are budgeted through its own
// limiter, `limiter/app`.
package tokens

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
)

// DefaultExpiringWithin is how long before it expires (Meta's clock) a
// token is reported expiring: a week for the tenant to reconnect.
const DefaultExpiringWithin = 7 * 24 * time.Hour

// Scopes the engine's reads need, by account type: comments and tags on
// Instagram; comments and reactions on Page posts.
var (
	InstagramScopes = []string{"instagram_basic", "instagram_manage_comments"}
	PageScopes      = []string{"pages_read_engagement", "pages_read_user_content"}
)

// RequiredScopes are the permissions a token needs to verify the claims of
// tenant t: those of each account type it has.
func RequiredScopes(t store.Tenant) []string {
	var need []string
	if t.InstagramAccount() != "" {
		need = append(need, InstagramScopes...)
	}
	if t.PageAccount() != "" {
		need = append(need, PageScopes...)
	}
	return need
}

// Policy is what Assess holds a token to.
type Policy struct {
	AppID          string        // our Meta app: a token issued for another is refused
	ExpiringWithin time.Duration // 0: DefaultExpiringWithin
}

// Meta's subcodes of error 190 that name why a token stopped working.
const (
	subcodeNotAuthorized   = 458 // the user removed the app: revoked
	subcodePasswordChanged = 460
	subcodeExpired         = 463
	subcodeInvalidSession  = 467
)

// Assess turns what /debug_token said into a health record: invalid
// (not valid, expired, another app's, an app token), revoked (the user
// removed the app), missing_scopes (it cannot read what the tenant's
// claims need), expiring (within p.ExpiringWithin of expires_at or
// data_access_expires_at), or healthy. metaNow is Meta's clock (the
// answer's Date), not ours: the two differ in accelerated runs.
func Assess(info graph.TokenInfo, required []string, metaNow time.Time, p Policy) store.TokenHealth {
	h := store.TokenHealth{
		Scopes: slices.Clone(info.Scopes), Type: info.Type, MetaUserID: info.UserID,
		ExpiresAt: info.ExpiresAt, DataAccessExpiresAt: info.DataAccessExpiresAt,
	}
	if h.Scopes == nil {
		h.Scopes = []string{}
	}
	within := p.ExpiringWithin
	if within <= 0 {
		within = DefaultExpiringWithin
	}
	switch {
	case !info.Valid && info.ErrorSubcode == subcodeNotAuthorized:
		h.State, h.Reason = store.TokenRevoked, "the user removed the app: "+describe(info)
	case !info.Valid:
		h.State, h.Reason = store.TokenInvalid, describe(info)
	case p.AppID != "" && info.AppID != p.AppID:
		h.State, h.Reason = store.TokenInvalid, fmt.Sprintf("issued for app %s, not ours (%s)", info.AppID, p.AppID)
	case strings.EqualFold(info.Type, "APP"):
		h.State, h.Reason = store.TokenInvalid, "an app access token reads no tenant's account"
	case expired(info.ExpiresAt, metaNow):
		h.State, h.Reason = store.TokenInvalid, "expired at "+stamp(info.ExpiresAt)
	case expired(info.DataAccessExpiresAt, metaNow):
		h.State, h.Reason = store.TokenInvalid, "data access expired at "+stamp(info.DataAccessExpiresAt)
	default:
		if missing := missingScopes(info.Scopes, required); len(missing) > 0 {
			h.State, h.Reason = store.TokenMissingScopes, "missing "+strings.Join(missing, ", ")
			break
		}
		if at := h.ExpiresFirst(); !at.IsZero() && at.Sub(metaNow) < within {
			what := "expires"
			if !at.Equal(info.ExpiresAt) {
				what = "data access expires"
			}
			h.State, h.Reason = store.TokenExpiring, fmt.Sprintf("%s at %s, in %s: reconnect before", what, stamp(at), days(at.Sub(metaNow)))
			break
		}
		h.State = store.TokenHealthy
	}
	return h
}

// Usable reports whether a token in state h verifies claims: healthy, or
// expiring (it works until it expires).
func Usable(h store.TokenHealth) bool {
	return h.State == store.TokenHealthy || h.State == store.TokenExpiring
}

// IsShortLived reports whether a token is a short-lived user token (an hour
// or two, from Facebook Login) to exchange for a long-lived one: a USER
// token that expires within a day.
func IsShortLived(info graph.TokenInfo, metaNow time.Time) bool {
	return strings.EqualFold(info.Type, "USER") && !info.ExpiresAt.IsZero() && info.ExpiresAt.Sub(metaNow) < 24*time.Hour
}

func expired(at, now time.Time) bool { return !at.IsZero() && !now.Before(at) }

func missingScopes(have, need []string) []string {
	var missing []string
	for _, s := range need {
		if !slices.Contains(have, s) && !slices.Contains(missing, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func describe(info graph.TokenInfo) string {
	msg := info.ErrorMessage
	if msg == "" {
		msg = "not valid"
	}
	if info.ErrorCode != 0 {
		msg = fmt.Sprintf("%s (code %d/%d)", msg, info.ErrorCode, info.ErrorSubcode)
	}
	return msg
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}
