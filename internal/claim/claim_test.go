package claim_test

import (
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/claim"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, line, errHas string
	}{
		{"minimal comment", `{"tenant":"acme","key":"k1","user":"u1","handle":"maya","kind":"ig_comment","target":"17900000000000001"}`, ""},
		{"page post with since and code", `{"tenant":"acme","key":"k1","user":"u1","handle":"Maya Rivers","kind":"fb_comment","target":"104_205","code":"AB-12","since":"2026-11-28T10:00:00Z"}`, ""},
		{"follow needs no handle", `{"tenant":"acme","key":"k1","user":"u1","kind":"ig_follow","target":"17841400000000001"}`, ""},
		{"not JSON", `{"tenant":`, "not a claim object"},
		{"unknown field", `{"tenant":"acme","key":"k1","user":"u1","handle":"m","kind":"ig_comment","target":"1","extra":1}`, `unknown field "extra"`},
		{"unknown kind", `{"tenant":"acme","key":"k1","user":"u1","handle":"m","kind":"tiktok_duet","target":"1"}`, "unknown kind"},
		{"missing tenant", `{"key":"k1","user":"u1","handle":"m","kind":"ig_comment","target":"1"}`, `"tenant" is required`},
		{"missing key", `{"tenant":"a","user":"u1","handle":"m","kind":"ig_comment","target":"1"}`, `"key" is required`},
		{"missing handle", `{"tenant":"a","key":"k","user":"u1","kind":"ig_comment","target":"1"}`, `"handle" is required`},
		{"blank handle", `{"tenant":"a","key":"k","user":"u1","handle":"  ","kind":"ig_comment","target":"1"}`, `"handle" is required`},
		{"non-numeric target", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"abc"}`, "not a Meta object id"},
		{"bad since", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1","since":"yesterday"}`, "not a claim object"},
		{"code on a reaction", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"fb_reaction","target":"1_2","code":"X1"}`, "no text"},
		{"bad code", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1","code":"a b"}`, `"code" must be`},
		{"tenant with spaces", `{"tenant":"a b","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1"}`, "has characters"},
		{"trailing data", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1"} {}`, "trailing data"},
		{"stray closing brace", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1"}}`, "trailing data"},
		{"stray closing bracket", `{"tenant":"a","key":"k","user":"u1","handle":"m","kind":"ig_comment","target":"1"} ]`, "trailing data"},
		{"NUL in handle", `{"tenant":"a","key":"k","user":"u1","handle":"m\u0000","kind":"ig_comment","target":"1"}`, `"handle" has control characters`},
		{"newline in handle", `{"tenant":"a","key":"k","user":"u1","handle":"m\nx","kind":"ig_comment","target":"1"}`, `"handle" has control characters`},
		{"trailing white space", "{\"tenant\":\"a\",\"key\":\"k\",\"user\":\"u1\",\"kind\":\"ig_like\",\"target\":\"1\"} \t\r\n", ""},
		{"array", `[1,2]`, "not a claim object"},
		{"non-UTF-8", "{\"tenant\":\"a\xff\"}", "not valid UTF-8"},
		{"huge line", `{"tenant":"` + strings.Repeat("a", 5000) + `"}`, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := claim.Parse([]byte(tt.line))
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want containing %q", err, tt.errHas)
			}
		})
	}
}

func TestReadLinesKeepsGoodLinesAndNumbersBadOnes(t *testing.T) {
	input := strings.Join([]string{
		`{"tenant":"a","key":"k1","user":"u","handle":"m","kind":"ig_comment","target":"1"}`,
		``,
		`not json`,
		`{"tenant":"a","key":"k2","user":"u","kind":"ig_like","target":"1"}`,
		`{"tenant":"a","key":"k3","user":"u","handle":"m","kind":"nope","target":"1"}`,
	}, "\n")
	claims, refused, err := claim.ReadLines(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 || claims[0].Claim.Key != "k1" || claims[1].Claim.Key != "k2" || claims[1].Line != 4 {
		t.Fatalf("claims = %+v", claims)
	}
	if len(refused) != 2 || refused[0].Line != 3 || refused[1].Line != 5 {
		t.Fatalf("refused = %+v", refused)
	}
}

// A line is measured without the white space around it, all of it: long
// leading white space does not hide a claim, and content past the limit is
// not cut off to leave a shorter claim that parses.
func TestReadLinesMeasuresTheWholeLine(t *testing.T) {
	good := `{"tenant":"a","key":"k1","user":"u","kind":"ig_like","target":"1"}`
	pad := strings.Repeat(" ", claim.MaxLineBytes)
	input := pad + good + pad + "\n" + good + pad + "x\n" + strings.Repeat("\u00a0", claim.MaxLineBytes) + good
	claims, refused, err := claim.ReadLines(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 1 || claims[0].Line != 1 {
		t.Fatalf("claims = %+v", claims)
	}
	if len(refused) != 2 || refused[0].Line != 2 || refused[1].Line != 3 ||
		!strings.Contains(refused[0].Reason, "longer than") || !strings.Contains(refused[1].Reason, "longer than") {
		t.Fatalf("refused = %+v", refused)
	}
}

func TestReadLinesRefusesHugeLineWithoutStopping(t *testing.T) {
	huge := `{"tenant":"` + strings.Repeat("a", 200_000) + `"}`
	input := huge + "\n" + `{"tenant":"a","key":"k1","user":"u","kind":"ig_like","target":"1"}` // no final newline
	claims, refused, err := claim.ReadLines(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused[0].Line != 1 || !strings.Contains(refused[0].Reason, "longer than") {
		t.Fatalf("refused = %+v", refused)
	}
	if len(claims) != 1 || claims[0].Line != 2 {
		t.Fatalf("claims = %+v", claims)
	}
}
