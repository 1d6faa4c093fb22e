// Package evidence decides whether something read from the Graph API proves a
// claim. It is pure code: the rule (same person, same target, on or after the
// time the task was published, carrying the claim code when there is one)
// lives here once, with table tests, and the activities only feed it.
package evidence

import (
	"strings"
	"time"
	"unicode"

	"github.com/socialproof/verifier/internal/claim"
)

// Action is one thing a person did on a Meta object, as read from the Graph
// API: a comment, a tag, a mention, a reaction.
type Action struct {
	ID       string    `json:"id,omitempty"`       // comment, media or reaction id
	Username string    `json:"username,omitempty"` // Instagram username or Facebook display name
	UserID   string    `json:"user_id,omitempty"`  // IG- or app-scoped user id, when Meta gives it
	Text     string    `json:"-"`                  // comment text or caption (not kept in evidence: personal data)
	Time     time.Time `json:"time,omitzero"`      // zero when Meta gives no time (reactions)
}

// SameHandle reports whether a claimed handle names the person behind an
// action. Instagram usernames are case-insensitive and often written with a
// leading @; Facebook gives a display name and an app-scoped id.
func SameHandle(handle string, a Action) bool {
	h := normalizeHandle(handle)
	if h == "" {
		return false
	}
	if a.UserID != "" && h == a.UserID {
		return true
	}
	return a.Username != "" && h == normalizeHandle(a.Username)
}

func normalizeHandle(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "@")
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
}

// Mismatch says why an action by the claimed person does not prove the claim.
type Mismatch string

const (
	NoMatch      Mismatch = ""             // the action proves the claim
	OtherPerson  Mismatch = "other_person" // someone else's action
	BeforeSince  Mismatch = "before_since" // done before the task was published
	MissingCode  Mismatch = "missing_code" // the claim code is not in the text
	TimeNotKnown Mismatch = "time_unknown" // the claim has a since, the action no time (never for reactions)
)

// Check tells whether a proves c, or the first reason it does not.
func Check(c claim.Claim, a Action) Mismatch {
	if !SameHandle(c.Handle, a) {
		return OtherPerson
	}
	if c.Since != nil && c.Kind != claim.FBReaction {
		// Reactions carry no time in the Graph API; a reaction that is still
		// there is the best proof there is.
		if a.Time.IsZero() {
			return TimeNotKnown
		}
		if a.Time.Before(*c.Since) {
			return BeforeSince
		}
	}
	if c.Code != "" && !containsCode(a.Text, c.Code) {
		return MissingCode
	}
	return NoMatch
}

// containsCode looks for the code as a whole word, case-insensitively, so
// code "AB12" is not found inside "XAB123".
func containsCode(text, code string) bool {
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' }
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !isWord(r) }) {
		if strings.EqualFold(w, code) {
			return true
		}
	}
	return false
}

// Find returns the first action among actions that proves c. When none does,
// it returns the most telling reason among the claimant's own actions
// (missing code before before-since), or OtherPerson when the claimant has none.
func Find(c claim.Claim, actions []Action) (Action, Mismatch) {
	best := OtherPerson
	for _, a := range actions {
		switch m := Check(c, a); m {
		case NoMatch:
			return a, NoMatch
		case OtherPerson:
		default:
			if rank(m) > rank(best) {
				best = m
			}
		}
	}
	return Action{}, best
}

func rank(m Mismatch) int {
	switch m {
	case MissingCode:
		return 3
	case BeforeSince:
		return 2
	case TimeNotKnown:
		return 1
	}
	return 0
}

// OlderThanAll reports whether every action on a page is older than since,
// so that later pages (Meta lists comments newest first) cannot hold proof.
func OlderThanAll(actions []Action, since time.Time) bool {
	if len(actions) == 0 {
		return false
	}
	for _, a := range actions {
		if a.Time.IsZero() || !a.Time.Before(since) {
			return false
		}
	}
	return true
}
