package evidence_test

import (
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/evidence"
)

func TestCheck(t *testing.T) {
	published := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	after := published.Add(time.Hour)
	comment := claim.Claim{Kind: claim.IGComment, Handle: "maya.rivers", Target: "1790", Since: &published}
	withCode := comment
	withCode.Code = "AB12"
	reaction := claim.Claim{Kind: claim.FBReaction, Handle: "Maya Rivers", Target: "10_20", Since: &published}
	noSince := claim.Claim{Kind: claim.IGComment, Handle: "maya.rivers", Target: "1790"}

	tests := []struct {
		name string
		c    claim.Claim
		a    evidence.Action
		want evidence.Mismatch
	}{
		{"same username", comment, evidence.Action{Username: "maya.rivers", Time: after}, evidence.NoMatch},
		{"username differs only by case", comment, evidence.Action{Username: "Maya.Rivers", Time: after}, evidence.NoMatch},
		{"handle written with @", claim.Claim{Kind: claim.IGComment, Handle: "@Maya.Rivers"}, evidence.Action{Username: "maya.rivers", Time: after}, evidence.NoMatch},
		{"other person", comment, evidence.Action{Username: "maya.rivers2", Time: after}, evidence.OtherPerson},
		{"matched by user id", claim.Claim{Kind: claim.FBComment, Handle: "100234"}, evidence.Action{Username: "Someone", UserID: "100234"}, evidence.NoMatch},
		{"display name with extra spaces", reaction, evidence.Action{Username: "maya  rivers", UserID: "5"}, evidence.NoMatch},
		{"before the task was published", comment, evidence.Action{Username: "maya.rivers", Time: published.Add(-time.Second)}, evidence.BeforeSince},
		{"exactly at publication", comment, evidence.Action{Username: "maya.rivers", Time: published}, evidence.NoMatch},
		{"no since: any time", noSince, evidence.Action{Username: "maya.rivers", Time: published.Add(-48 * time.Hour)}, evidence.NoMatch},
		{"comment without time but claim has since", comment, evidence.Action{Username: "maya.rivers"}, evidence.TimeNotKnown},
		{"reaction has no time: still proof", reaction, evidence.Action{Username: "Maya Rivers"}, evidence.NoMatch},
		{"code present", withCode, evidence.Action{Username: "maya.rivers", Time: after, Text: "love it! ab12 🎉"}, evidence.NoMatch},
		{"code missing", withCode, evidence.Action{Username: "maya.rivers", Time: after, Text: "love it!"}, evidence.MissingCode},
		{"code only inside a longer word", withCode, evidence.Action{Username: "maya.rivers", Time: after, Text: "XAB123"}, evidence.MissingCode},
		{"comment edited to remove the code", withCode, evidence.Action{Username: "maya.rivers", Time: after, Text: "edited"}, evidence.MissingCode},
		{"empty handle never matches", claim.Claim{Kind: claim.IGComment}, evidence.Action{Username: ""}, evidence.OtherPerson},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evidence.Check(tt.c, tt.a); got != tt.want {
				t.Fatalf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	published := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	c := claim.Claim{Kind: claim.IGComment, Handle: "maya", Code: "Z9", Since: &published}
	early := evidence.Action{ID: "1", Username: "maya", Time: published.Add(-time.Minute), Text: "Z9"}
	noCode := evidence.Action{ID: "2", Username: "maya", Time: published.Add(time.Minute), Text: "hi"}
	good := evidence.Action{ID: "3", Username: "MAYA", Time: published.Add(time.Minute), Text: "z9"}
	other := evidence.Action{ID: "4", Username: "sam", Time: published.Add(time.Minute), Text: "Z9"}

	tests := []struct {
		name    string
		actions []evidence.Action
		wantID  string
		want    evidence.Mismatch
	}{
		{"nothing", nil, "", evidence.OtherPerson},
		{"only others", []evidence.Action{other}, "", evidence.OtherPerson},
		{"deleted comment is simply absent", []evidence.Action{other, early}, "", evidence.BeforeSince},
		{"missing code outranks too early", []evidence.Action{early, noCode}, "", evidence.MissingCode},
		{"proof among misses", []evidence.Action{early, noCode, good, other}, "3", evidence.NoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, m := evidence.Find(c, tt.actions)
			if m != tt.want || a.ID != tt.wantID {
				t.Fatalf("Find = (%q, %q), want (%q, %q)", a.ID, m, tt.wantID, tt.want)
			}
		})
	}
}

func TestOlderThanAll(t *testing.T) {
	since := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	old := evidence.Action{Time: since.Add(-time.Hour)}
	fresh := evidence.Action{Time: since.Add(time.Hour)}
	tests := []struct {
		name    string
		actions []evidence.Action
		want    bool
	}{
		{"empty page proves nothing about later pages", nil, false},
		{"all older", []evidence.Action{old, old}, true},
		{"one fresh", []evidence.Action{old, fresh}, false},
		{"unknown time", []evidence.Action{old, {}}, false},
	}
	for _, tt := range tests {
		if got := evidence.OlderThanAll(tt.actions, since); got != tt.want {
			t.Errorf("%s: got %v", tt.name, got)
		}
	}
}
