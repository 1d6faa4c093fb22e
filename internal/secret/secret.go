// Package secret holds Meta tokens and the app secret in a type that never
// prints its value: fmt, zap and encoding/json all see "[redacted]". Values
// are resolved from references ("env:NAME" or "file:PATH") inside activities,
// so workflow inputs, results and histories carry only the reference's owner id.
package secret

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Value is a secret string. Use Reveal only where the value must leave the
// process (an HTTP request to Meta).
type Value struct{ v string }

const redacted = "[redacted]"

// New wraps s.
func New(s string) Value { return Value{v: s} }

// Reveal returns the secret itself.
func (s Value) Reveal() string { return s.v }

// Empty reports whether no value is held.
func (s Value) Empty() bool { return s.v == "" }

func (s Value) String() string                { return redacted }
func (s Value) GoString() string              { return redacted }
func (s Value) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
func (s Value) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (s Value) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (s Value) LogValue() slog.Value          { return slog.StringValue(redacted) }

// ErrBadRef is returned for a reference that is neither env: nor file:.
var ErrBadRef = errors.New(`secret reference must be "env:NAME" or "file:PATH"`)

// CheckRef reports whether ref is a well-formed reference without resolving it.
func CheckRef(ref string) error {
	switch {
	case strings.HasPrefix(ref, "env:") && len(ref) > len("env:"):
		return nil
	case strings.HasPrefix(ref, "file:") && len(ref) > len("file:"):
		return nil
	}
	return ErrBadRef
}

// Resolve reads the secret a reference names. Errors name the reference,
// never the value.
func Resolve(ref string) (Value, error) {
	if err := CheckRef(ref); err != nil {
		return Value{}, err
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		v, set := os.LookupEnv(name)
		if !set || strings.TrimSpace(v) == "" {
			return Value{}, fmt.Errorf("secret %s: environment variable is not set", ref)
		}
		return New(strings.TrimSpace(v)), nil
	}
	path := strings.TrimPrefix(ref, "file:")
	data, err := os.ReadFile(path)
	if err != nil {
		return Value{}, fmt.Errorf("secret %s: %w", ref, err)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return Value{}, fmt.Errorf("secret %s: file is empty", ref)
	}
	return New(v), nil
}
