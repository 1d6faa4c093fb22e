package metasim

import (
	"fmt"
	"time"
)

// graphError is one Graph API error answer.
type graphError struct {
	status    int
	code      int
	subcode   int
	typ       string
	msg       string
	transient bool
	userTitle string
	userMsg   string
	outcome   string // request-log outcome; derived from status/code when empty
}

func (e *graphError) Error() string { return e.msg }

func (e *graphError) body(trace string) omap {
	o := omap{
		{"message", e.msg},
		{"type", e.typ},
		{"code", e.code},
	}
	if e.subcode != 0 {
		o = append(o, kv{"error_subcode", e.subcode})
	}
	o = append(o, kv{"is_transient", e.transient})
	if e.userTitle != "" {
		o = append(o, kv{"error_user_title", e.userTitle})
	}
	if e.userMsg != "" {
		o = append(o, kv{"error_user_msg", e.userMsg})
	}
	o = append(o, kv{"fbtrace_id", trace})
	return omap{{"error", o}}
}

func (e *graphError) logOutcome() string {
	if e.outcome != "" {
		return e.outcome
	}
	switch {
	case e.status >= 500:
		return OutcomeFault
	case e.code == 190 || e.code == 104:
		return OutcomeTokenInvalid
	case e.code == 10 || (e.code >= 200 && e.code <= 299):
		return OutcomePermission
	case e.code == 4 || e.code == 17 || e.code == 32 || e.code == 613 || e.code == 80001 || e.code == 80002:
		return OutcomeThrottled
	case e.code == 100 && e.subcode == 33:
		return OutcomeNotFound
	}
	return OutcomeBadRequest
}

func errNotFound(id, method string) *graphError {
	return &graphError{status: 400, code: 100, subcode: 33, typ: "GraphMethodException",
		msg: fmt.Sprintf("Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api", method, id)}
}

func errUnknownPath(components string) *graphError {
	return &graphError{status: 400, code: 2500, typ: "OAuthException",
		msg: "Unknown path components: " + components}
}

func errSyntax(err error) *graphError {
	return &graphError{status: 400, code: 2500, typ: "OAuthException", msg: err.Error()}
}

func errParam(msg string) *graphError {
	return &graphError{status: 400, code: 100, typ: "OAuthException", msg: msg}
}

func errNoToken() *graphError {
	return &graphError{status: 400, code: 104, typ: "OAuthException",
		msg: "An access token is required to request this resource."}
}

func errNoActiveToken() *graphError {
	return &graphError{status: 400, code: 2500, typ: "OAuthException",
		msg: "An active access token must be used to query information about the current user.", outcome: OutcomeTokenInvalid}
}

func errCannotParseToken() *graphError {
	return &graphError{status: 400, code: 190, typ: "OAuthException",
		msg: "Invalid OAuth access token - Cannot parse access token"}
}

func errBadClientSecret() *graphError {
	return &graphError{status: 400, code: 190, typ: "OAuthException",
		msg: "Error validating client secret."}
}

const msgPasswordChanged = "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons."

func errPasswordChanged() *graphError {
	return &graphError{status: 400, code: 190, subcode: 460, typ: "OAuthException", msg: msgPasswordChanged}
}

var pacific = func() *time.Location {
	if l, err := time.LoadLocation("America/Los_Angeles"); err == nil {
		return l
	}
	return time.FixedZone("PST", -8*3600)
}()

func metaClock(t time.Time) string {
	return t.In(pacific).Format("Monday, 02-Jan-06 15:04:05 MST")
}

func msgExpired(expired, now time.Time) string {
	return fmt.Sprintf("Error validating access token: Session has expired on %s. The current time is %s.", metaClock(expired), metaClock(now))
}

func errExpired(expired, now time.Time) *graphError {
	return &graphError{status: 400, code: 190, subcode: 463, typ: "OAuthException", msg: msgExpired(expired, now)}
}

func errProofMissing() *graphError {
	return &graphError{status: 400, code: 100, typ: "GraphMethodException",
		msg: "API calls from the server require an appsecret_proof argument"}
}

func errProofInvalid() *graphError {
	return &graphError{status: 400, code: 100, typ: "GraphMethodException",
		msg: "Invalid appsecret_proof provided in the API argument"}
}

func errIGPermission() *graphError {
	return &graphError{status: 403, code: 10, typ: "OAuthException",
		msg: "(#10) Application does not have permission for this action"}
}

func errPagePermission() *graphError {
	return &graphError{status: 403, code: 200, typ: "OAuthException",
		msg: "(#200) Permissions error"}
}

func errAppLimit() *graphError {
	return &graphError{status: 400, code: 4, typ: "OAuthException", transient: true,
		msg: "(#4) Application request limit reached"}
}

func errIGLimit() *graphError {
	return &graphError{status: 400, code: 80002, typ: "OAuthException", transient: true,
		msg: "There have been too many calls to this Instagram account. Wait a bit and try again."}
}

func errPageLimit() *graphError {
	return &graphError{status: 400, code: 80001, typ: "OAuthException", transient: true,
		msg: "There have been too many calls to this Page account. Wait a bit and try again."}
}

func errFault(status int) *graphError {
	return &graphError{status: status, code: 2, typ: "OAuthException", transient: true,
		msg: "An unexpected error has occurred. Please retry your request later."}
}

func errMethod(method, id string) *graphError {
	return errNotFound(id, method)
}

func msgNotAuthorized(appID string) string {
	return "Error validating access token: The user has not authorized application " + appID + "."
}

// errNotAuthorized: the user removed the app (Deauthorize, TokenRevoked).
func errNotAuthorized(appID string) *graphError {
	return &graphError{status: 400, code: 190, subcode: 458, typ: "OAuthException", msg: msgNotAuthorized(appID)}
}

// errOtherApp answers a Graph call made with a token issued for another
// app: our app's appsecret_proof cannot match it, and Meta does not let one
// app use another's tokens.
func errOtherApp(appID string) *graphError {
	return &graphError{status: 400, code: 190, typ: "OAuthException",
		msg: "Error validating access token: The access token was not issued for application " + appID + "."}
}

func errUserLimit() *graphError {
	return &graphError{status: 400, code: 17, typ: "OAuthException", transient: true,
		msg: "(#17) User request limit reached"}
}

// OAuth endpoint (/oauth/access_token) errors.

func errClientSecret() *graphError {
	return &graphError{status: 400, code: 1, typ: "OAuthException", msg: "Error validating client secret."}
}

func errMissingParam(name string) *graphError {
	return &graphError{status: 400, code: 100, typ: "OAuthException", msg: "Missing " + name + " parameter."}
}

func errGrantType(gt string) *graphError {
	return &graphError{status: 400, code: 100, typ: "OAuthException",
		msg: fmt.Sprintf("Unsupported grant_type %.50q: only fb_exchange_token is supported.", gt)}
}

func errExchangeOtherApp(appID string) *graphError {
	return &graphError{status: 400, code: 190, typ: "OAuthException",
		msg: "Error validating application. The access token was not issued for application " + appID + "."}
}

func errNotUserToken() *graphError {
	return &graphError{status: 400, code: 190, typ: "OAuthException",
		msg: "Invalid OAuth access token - fb_exchange_token must be a user access token."}
}
