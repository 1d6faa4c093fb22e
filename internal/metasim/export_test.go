package metasim

import "time"

// SetWebhookBackoff changes the retry backoff of later subscriptions and
// returns a function restoring it. Not for parallel tests.
func SetWebhookBackoff(first, limit time.Duration) (restore func()) {
	f, l := webhookBackoff, webhookBackoffMax
	webhookBackoff, webhookBackoffMax = first, limit
	return func() { webhookBackoff, webhookBackoffMax = f, l }
}
