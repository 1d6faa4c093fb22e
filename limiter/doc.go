// Package limiter will hold the per-token call budget: a rolling-window token
// bucket (1 h for app and user tokens, 24 h for Business Use Case tokens),
// steered by Meta's usage headers and throttle errors, and the long-running
// limiter workflow (`limiter/<token-id>`) every Graph API call reserves a
// permit from. Until it lands, Graph calls are not paced: see the README.
package limiter
