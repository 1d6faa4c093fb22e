package activities

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode/utf8"
)

// A poison claim is one whose handling makes the worker panic: matching it
// against evidence, or the read of its target (a response our decoding
// chokes on). Left to the SDK, the panic fails the whole activity, which is
// retried, and hands its whole chunk back to pending, where the next batch
// takes it and fails again: one claim would hold its chunk undecided
// forever. So each claim's handling runs under guard: a panic becomes a
// *panicError for that claim alone, the claim is quarantined
// (store.Quarantine) with the panic as its reason, and the rest of the chunk
// goes on. A poison row never fails its batch.

// Poisoned is a claim quarantined by a check: handling it panicked.
type Poisoned struct {
	ClaimID int64
	Reason  string // the panic and where it happened
}

// panicError is a panic recovered by guard.
type panicError struct {
	value string // the panic value, printed, shortened, secrets redacted
	at    string // the first frames of the panicking stack, outside the runtime
	stack []byte // the whole stack, for the worker's log (function names and raw words, no values)
}

func (e *panicError) Error() string {
	if e.at == "" {
		return "panic: " + e.value
	}
	return "panic: " + e.value + " (at " + e.at + ")"
}

// Bounds of what a quarantine reason keeps of a panic.
const (
	maxPanicValue  = 300
	maxPanicFrames = 4
)

// secretParams matches what could carry a secret in a panic value: a Graph
// URL's access_token or appsecret_proof, or an Authorization header's value.
// Tokens themselves are secret.Value, which prints "[redacted]"; a URL built
// for a request is a plain string.
var secretParams = regexp.MustCompile(`(?i)(access_token|appsecret_proof|client_secret)=[^&\s"']*|(bearer|oauth)\s+[^\s"']+`)

// guard runs fn and turns a panic in it into a *panicError; nil when fn
// returns. runtime.Goexit (t.FailNow) is not a panic and is not stopped.
func guard(fn func()) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err = &panicError{value: panicValue(r), at: panicFrames(), stack: debug.Stack()}
	}()
	fn()
	return nil
}

func panicValue(r any) string {
	v := fmt.Sprint(r)
	v = secretParams.ReplaceAllStringFunc(v, func(m string) string {
		if i := strings.IndexAny(m, "= \t"); i >= 0 {
			return m[:i+1] + "[redacted]"
		}
		return "[redacted]"
	})
	v = strings.Join(strings.Fields(v), " ") // one line
	if len(v) > maxPanicValue {
		cut := maxPanicValue
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut] + "…"
	}
	return v
}

// panicFrames names the first frames of the panicking goroutine below the
// runtime's own (gopanic, sigpanic, ...) and above guard: function and
// file:line, no argument values.
func panicFrames() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs) // past runtime.Callers, panicFrames and guard's deferred func
	frames := runtime.CallersFrames(pcs[:n])
	var out []string
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "runtime."):
		case strings.Contains(f.Function, "/activities.guard"):
			more = false // the frames beyond are guard's callers, not the panic's
		default:
			name := f.Function
			if i := strings.LastIndex(name, "/"); i >= 0 {
				name = name[i+1:]
			}
			file := f.File
			if i := strings.LastIndex(file, "/"); i >= 0 {
				file = file[i+1:]
			}
			out = append(out, fmt.Sprintf("%s %s:%d", name, file, f.Line))
		}
		if !more || len(out) == maxPanicFrames {
			break
		}
	}
	return strings.Join(out, " < ")
}

// poisons counts the panics of one activity's checks.
type poisons struct {
	panics int
}

// run is guard, counting the panics.
func (p *poisons) run(fn func()) error {
	err := guard(fn)
	if err != nil {
		p.panics++
	}
	return err
}

// isPoison reports whether err is a panic recovered by guard.
func isPoison(err error) (*panicError, bool) {
	pe, ok := err.(*panicError)
	return pe, ok
}
