package activities

import (
	"errors"
	"strings"
	"testing"
)

func indexPastTheEnd(n int) int {
	s := make([]int, n)
	return s[n] // index out of range
}

// guard turns a panic into an error naming the panic and its first frames,
// on one line, with no secret and no argument values; it lets a normal
// return through.
func TestGuard(t *testing.T) {
	if err := guard(func() {}); err != nil {
		t.Fatalf("guard of a normal return = %v", err)
	}
	err := guard(func() { indexPastTheEnd(3) })
	pe, ok := isPoison(err)
	if !ok {
		t.Fatalf("guard = %v (%T), want a *panicError", err, err)
	}
	msg := pe.Error()
	for _, want := range []string{"panic: runtime error: index out of range [3] with length 3", "activities.indexPastTheEnd poison_internal_test.go:", "activities.TestGuard.func2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("reason %q lacks %q", msg, want)
		}
	}
	for _, unwanted := range []string{"runtime.", "activities.guard", "\n", "0x"} {
		if strings.Contains(msg, unwanted) {
			t.Errorf("reason %q holds %q", msg, unwanted)
		}
	}
	if len(pe.stack) == 0 {
		t.Error("no stack kept for the log")
	}
	t.Log(msg)

	err = guard(func() {
		panic("GET https://graph.facebook.com/v21.0/1789?access_token=EAAB-secret&appsecret_proof=abc123&fields=id\nAuthorization: Bearer EAAB-other")
	})
	msg = err.Error()
	for _, secret := range []string{"EAAB-secret", "abc123", "EAAB-other"} {
		if strings.Contains(msg, secret) {
			t.Errorf("reason %q holds a secret", msg)
		}
	}
	if !strings.Contains(msg, "access_token=[redacted]") || !strings.Contains(msg, "fields=id") {
		t.Errorf("reason %q: want the token redacted and the rest kept", msg)
	}

	err = guard(func() { panic(errors.New(strings.Repeat("é", 1000))) })
	if pe, _ := isPoison(err); len(pe.value) > maxPanicValue+len("…") || !strings.HasSuffix(pe.value, "…") {
		t.Errorf("a long panic value kept %d bytes", len(pe.value))
	}

	var p poisons
	_ = p.run(func() {})
	_ = p.run(func() { panic("x") })
	if p.panics != 1 {
		t.Errorf("poisons counted %d panics, want 1", p.panics)
	}
}
