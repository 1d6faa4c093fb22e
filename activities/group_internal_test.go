package activities

import (
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

// Stored evidence proves a claim by the same rule as a fresh read: same
// person (usernames compare without case or @), on or after since, with the
// claim code; a comment a webhook reported removed proves nothing, and an
// edit that dropped the code proves nothing either.
func TestMatchStored(t *testing.T) {
	since := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	c := store.Claim{Claim: claim.Claim{Tenant: "acme", Key: "k1", User: "u1", Handle: "@Maya.Rivers", Kind: claim.IGComment, Target: "m1", Code: "K7Q2", Since: &since}}
	comment := func(id, username, text string, at time.Time, deleted bool) store.EvidenceAction {
		return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Username: username, Text: text, Time: at, Deleted: deleted, Source: store.SourceWebhook}
	}
	after := since.Add(time.Hour)
	tests := []struct {
		name    string
		actions []store.EvidenceAction
		want    bool
	}{
		{"same user, other case, with the code", []store.EvidenceAction{comment("c1", "maya.rivers", "love it K7Q2", after, false)}, true},
		{"someone else", []store.EvidenceAction{comment("c1", "maya.river", "love it K7Q2", after, false)}, false},
		{"before the task was published", []store.EvidenceAction{comment("c1", "maya.rivers", "K7Q2", since.Add(-time.Minute), false)}, false},
		{"edited: the code is gone", []store.EvidenceAction{comment("c1", "maya.rivers", "love it", after, false)}, false},
		{"removed", []store.EvidenceAction{comment("c1", "maya.rivers", "love it K7Q2", after, true)}, false},
		{"removed, and a second comment that proves it", []store.EvidenceAction{
			comment("c1", "maya.rivers", "K7Q2", after, true), comment("c2", "Maya.Rivers", "again K7Q2!", after, false)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := matchStored(c, tt.actions); got != tt.want {
				t.Fatalf("matchStored = %v, want %v", got, tt.want)
			}
		})
	}
}

// Stored coverage shows absence only when the read came at least the grace
// delay after the claim and reached back to its since.
func TestCovers(t *testing.T) {
	submitted := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	since := submitted.Add(-3 * time.Hour)
	c := store.Claim{Claim: claim.Claim{Since: &since}, SubmittedAt: submitted}
	noSince := store.Claim{SubmittedAt: submitted}
	grace := 2 * time.Minute
	tests := []struct {
		name  string
		claim store.Claim
		cov   *store.Coverage
		want  bool
	}{
		{"no coverage", c, nil, false},
		{"read long enough after, back past since", c, &store.Coverage{From: since.Add(-time.Hour), ReadAt: submitted.Add(grace)}, true},
		{"read too soon after the claim", c, &store.Coverage{From: since.Add(-time.Hour), ReadAt: submitted.Add(grace - time.Second)}, false},
		{"read did not reach since", c, &store.Coverage{From: since.Add(time.Minute), ReadAt: submitted.Add(time.Hour)}, false},
		{"complete read", noSince, &store.Coverage{ReadAt: submitted.Add(time.Hour)}, true},
		{"claim without since, partial read", noSince, &store.Coverage{From: since, ReadAt: submitted.Add(time.Hour)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.cov, tt.claim, grace); got != tt.want {
				t.Fatalf("covers = %v, want %v", got, tt.want)
			}
		})
	}
}
