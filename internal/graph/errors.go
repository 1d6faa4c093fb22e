package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	facebook "github.com/huandu/facebook/v2"
)

// Class is what a caller should do about a failed call.
type Class string

const (
	// Transient: Meta or the network hiccuped; retry with backoff.
	Transient Class = "transient"
	// Throttled: the token hit a rate limit; stop calling on it until RetryAfter
	// (more calls extend the block).
	Throttled Class = "throttled"
	// TokenBroken: the token is expired or invalid (190); no call with it can
	// succeed until it is replaced. Never a reason to reject a claim.
	TokenBroken Class = "token_broken"
	// Permission: the token cannot read this account (10, 200-299): the tenant
	// has not granted access. Never a reason to reject a claim.
	Permission Class = "permission"
	// NotFound: the object does not exist (100/33): the target is gone or was
	// never there.
	NotFound Class = "not_found"
	// Permanent: the request itself is wrong (bad parameter, our app config).
	Permanent Class = "permanent"
)

// Error is a classified Graph API failure. Its message carries Meta's code and
// text, never a token.
type Error struct {
	Class      Class
	Op         string // e.g. "GET /{id}/comments"
	Code       int
	Subcode    int
	Message    string
	TraceID    string
	RetryAfter time.Duration // for Throttled: Meta's estimated time to regain access, when it says
	Usage      Usage
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("graph %s: %s (code %d/%d): %s", e.Op, e.Class, e.Code, e.Subcode, e.Message)
	}
	return fmt.Sprintf("graph %s: %s: %s", e.Op, e.Class, e.Message)
}

// ClassOf returns the class of err, Transient for errors the package did not make.
func ClassOf(err error) Class {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Class
	}
	return Transient
}

// Throttle error codes: app (4), user (17), pages (32), custom (613), and the
// Business Use Case family (80000-80014: 80001 pages, 80002 Instagram, ...).
func isThrottleCode(code int) bool {
	switch {
	case code == 4, code == 17, code == 32, code == 613:
		return true
	case code >= 80000 && code <= 80014:
		return true
	}
	return false
}

func classify(op string, err error, usage Usage) error {
	var fe *facebook.Error
	if errors.As(err, &fe) {
		e := &Error{Op: op, Code: fe.Code, Subcode: fe.ErrorSubcode, Message: fe.Message, TraceID: fe.TraceID, Usage: usage}
		switch {
		case isThrottleCode(fe.Code):
			e.Class = Throttled
			e.RetryAfter = usage.RegainAfter()
		case fe.Code == 190 || fe.Code == 102:
			e.Class = TokenBroken
		case fe.Code == 10 || (fe.Code >= 200 && fe.Code <= 299):
			e.Class = Permission
		case fe.Code == 100 && fe.ErrorSubcode == 33, fe.Code == 803:
			e.Class = NotFound
		case fe.IsTransient || fe.Code == 1 || fe.Code == 2:
			e.Class = Transient
		default:
			e.Class = Permanent
		}
		return e
	}
	var se *statusError
	if errors.As(err, &se) {
		return &Error{Class: Transient, Op: op, Message: se.Error(), Usage: usage}
	}
	if errors.Is(err, errBodyTooLarge) {
		return &Error{Class: Transient, Op: op, Message: errBodyTooLarge.Error(), Usage: usage}
	}
	var ue *facebook.UnmarshalError
	if errors.As(err, &ue) {
		// A body that is not JSON: a proxy's 502 page, a truncated answer.
		return &Error{Class: Transient, Op: op, Message: "response is not a Graph API JSON body", Usage: usage}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Class: Transient, Op: op, Message: "network: " + redactURL(err), Usage: usage}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Class: Transient, Op: op, Message: "canceled", Usage: usage}
	}
	return &Error{Class: Transient, Op: op, Message: redactURL(err), Usage: usage}
}

// redactURL describes a transport error without its URL: the URL may carry
// the token (huandu strips access_token from *url.Error, but not from every
// error it wraps).
func redactURL(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return "request failed"
}
