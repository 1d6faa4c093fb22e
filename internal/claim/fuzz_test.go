package claim_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/socialproof/verifier/internal/claim"
)

// claimSeeds are typical and hostile claim lines; they run as ordinary tests
// under `go test` and seed the fuzzers (with testdata/fuzz/...).
var claimSeeds = []string{
	`{"tenant":"acme","key":"k1","user":"u1","handle":"maya","kind":"ig_comment","target":"17900000000000001"}`,
	`{"tenant":"acme","key":"k1","user":"u1","handle":"Maya Rivers","kind":"fb_comment","target":"104_205","code":"AB-12","since":"2026-11-28T10:00:00Z"}`,
	`{"tenant":"acme","key":"k1","user":"u1","kind":"ig_follow","target":"17841400000000001"}`,
	`{"tenant":"acme","key":"k1","user":"u1","handle":"  @maya.r  ","kind":"ig_tag","target":"1","since":"2026-01-02T03:04:05.123456789+05:30"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"tiktok_duet","target":"1"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"abc"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"99999999999999999999999999999999999999999999"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"1"} {}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"1"}}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m\u0000x","kind":"ig_comment","target":"1"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"\ud800","kind":"ig_comment","target":"1"}`,
	`{"TENANT":"a","Key":"k","user":"u","handle":"m","kind":"ig_comment","target":"1","tenant":"b"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"1","since":"0000-01-01T00:00:00+23:59"}`,
	`{"tenant":"a","key":"k","user":"u","handle":"m","kind":"ig_comment","target":"1","since":null,"code":""}`,
	`{"tenant":{"nested":[1,[2,{"x":3}]]}}`,
	`[1,2]`,
	`null`,
	`""`,
	``,
	"{\"tenant\":\"a\xff\"}",
	"\xef\xbb\xbf{\"tenant\":\"a\"}",
	`{"tenant":"` + strings.Repeat("a", 200) + `","key":"k","user":"u","kind":"ig_like","target":"1"}`,
	`{"tenant":"a","key":"k","user":"u","kind":"ig_like","target":"1","handle":"` + strings.Repeat("é", 60) + `"}`,
}

// FuzzParseClaim: Parse never panics; it refuses with a non-empty, readable
// reason, or returns a valid claim that survives a JSON round trip unchanged.
func FuzzParseClaim(f *testing.F) {
	for _, s := range claimSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := claim.Parse(line)
		if err != nil {
			checkRefusal(t, line, c, err)
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted a line that is not exactly one JSON value: %q", line)
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("accepted claim does not validate: %v", verr)
		}
		if c.Handle != strings.TrimSpace(c.Handle) {
			t.Fatalf("handle %q is not trimmed", c.Handle)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted claim cannot be encoded: %v", err)
		}
		if len(again) > claim.MaxLineBytes {
			t.Fatalf("accepted claim encodes to %d bytes, over the line limit", len(again))
		}
		c2, err := claim.Parse(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		if !sameClaim(c, c2) {
			t.Fatalf("round trip changed the claim:\n%+v\n%+v", c, c2)
		}
	})
}

// fields are the names a validation reason quotes.
var fields = []string{`"tenant"`, `"key"`, `"user"`, `"handle"`, `"kind"`, `"target"`, `"code"`, "unknown kind"}

func checkRefusal(t *testing.T, line []byte, c claim.Claim, err error) {
	t.Helper()
	msg := err.Error()
	if msg == "" || !utf8.ValidString(msg) {
		t.Fatalf("refusal reason %q is empty or not UTF-8", msg)
	}
	if c != (claim.Claim{}) {
		t.Fatalf("refused line returned a claim: %+v", c)
	}
	switch {
	case len(line) > claim.MaxLineBytes:
		if !strings.Contains(msg, "longer than") {
			t.Fatalf("oversized line refused with %q", msg)
		}
	case !utf8.Valid(line):
		if !strings.Contains(msg, "UTF-8") {
			t.Fatalf("non-UTF-8 line refused with %q", msg)
		}
	case strings.HasPrefix(msg, "not a claim object: "), msg == "trailing data after the claim object":
	default:
		// A well-formed object that fails validation: the reason names the field.
		for _, f := range fields {
			if strings.Contains(msg, f) {
				return
			}
		}
		t.Fatalf("reason %q names no field", msg)
	}
}

func sameClaim(a, b claim.Claim) bool {
	as, bs := a.Since, b.Since
	a.Since, b.Since = nil, nil
	if a != b || (as == nil) != (bs == nil) {
		return false
	}
	return as == nil || as.Equal(*bs)
}

// FuzzReadLines: every non-blank input line comes out exactly once, as a
// claim or as a refusal with its line number: nothing is lost, nothing
// stops the rest.
func FuzzReadLines(f *testing.F) {
	good := `{"tenant":"a","key":"k1","user":"u","kind":"ig_like","target":"1"}`
	f.Add([]byte(strings.Join(claimSeeds, "\n")))
	f.Add([]byte(good + "\r\n\r\n" + good + "\n"))
	f.Add([]byte(strings.Repeat(" ", claim.MaxLineBytes+10) + good + "\n" + good))
	f.Add([]byte(good + strings.Repeat(" ", claim.MaxLineBytes) + "x\n" + good))
	f.Add([]byte(strings.Repeat("\u00a0", claim.MaxLineBytes) + good))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("\xff\xfe\n" + good))
	f.Fuzz(func(t *testing.T, input []byte) {
		claims, refused, err := claim.ReadLines(bytes.NewReader(input))
		if err != nil {
			t.Fatalf("ReadLines of an in-memory reader: %v", err)
		}
		got := map[int]string{} // line -> "claim" or the reason
		byLine := map[int]claim.Claim{}
		for _, l := range claims {
			if _, dup := got[l.Line]; dup {
				t.Fatalf("line %d reported twice", l.Line)
			}
			got[l.Line], byLine[l.Line] = "claim", l.Claim
		}
		for _, r := range refused {
			if _, dup := got[r.Line]; dup {
				t.Fatalf("line %d reported twice", r.Line)
			}
			if r.Reason == "" {
				t.Fatalf("line %d refused without a reason", r.Line)
			}
			got[r.Line] = r.Reason
		}
		segments := bytes.Split(input, []byte("\n"))
		for i, seg := range segments {
			n := i + 1
			trimmed := bytes.TrimSpace(seg)
			outcome, reported := got[n]
			delete(got, n)
			longRaw := len(seg) > claim.MaxLineBytes
			switch {
			case len(trimmed) == 0:
				if reported && !(longRaw && strings.Contains(outcome, "longer than")) {
					t.Fatalf("blank line %d reported: %q", n, outcome)
				}
			case !reported:
				t.Fatalf("line %d (%d bytes) lost: neither a claim nor refused", n, len(seg))
			case len(trimmed) > claim.MaxLineBytes:
				if !strings.Contains(outcome, "longer than") {
					t.Fatalf("line %d of %d bytes: %q", n, len(trimmed), outcome)
				}
			case longRaw && strings.Contains(outcome, "longer than"):
				// Over the limit with its padding: refused, not lost.
			default:
				want, werr := claim.Parse(trimmed)
				switch {
				case werr != nil && outcome != werr.Error():
					t.Fatalf("line %d: reason %q, Parse says %q", n, outcome, werr)
				case werr == nil && (outcome != "claim" || !sameClaim(want, byLine[n])):
					t.Fatalf("line %d: %q %+v, Parse accepts %+v", n, outcome, byLine[n], want)
				}
			}
		}
		if len(got) > 0 {
			t.Fatalf("reports for lines that do not exist: %v", got)
		}
	})
}
