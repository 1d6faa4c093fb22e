// Package config reads the engine's settings from flags and environment
// variables (flags win), with defaults for the embedded setup: a local
// Temporal dev server, an SQLite file, and metasim standing in for Meta.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/secret"
)

// Config is shared by the worker and the starter.
type Config struct {
	TemporalAddress string
	Namespace       string
	StoreURL        string

	GraphURL        string // Graph API base URL: metasim locally, https://graph.facebook.com/ for real
	GraphVersion    string
	AppID           string
	AppSecretRef    string // "env:NAME" or "file:PATH"; empty: no appsecret_proof
	PlatformTokenID string // the token standard tenants are verified with

	// Speed runs simulated time faster: the schedule interval, lease, re-check
	// delay and backoffs are divided by it, so tests and demos run an hour in
	// a minute at Speed 60. Budget windows (metasim, and later the limiter)
	// use the same factor.
	Speed     float64
	Interval  time.Duration // how often the schedule fires the Dispatcher (before Speed)
	BatchSize int           // claims per Dispatcher run
	// BacklogBatchSize is how many claims a Dispatcher run takes while the
	// Governor has standard tenants on honor (a backlog): honor costs no
	// call, so the backlog drains at this rate rather than BatchSize's.
	// 0 keeps BatchSize.
	BacklogBatchSize int
	LeaseTTL         time.Duration // how long a claimed batch stays leased without renewal (before Speed)
	RecheckDelay     time.Duration // grace before a claim without evidence is checked again and rejected (before Speed)
	// ClaimHorizon makes claiming budget-aware: each Dispatcher run leases,
	// per verifying tenant, claims on no more targets than its token can read
	// within this much platform time (counting those already leased), so no
	// claim waits leased behind a slow token. Shorter than about an hour of
	// budget, batches wait out their grace delays with too little work queued
	// and tokens idle (the limiter tests measure it). 0 leases oldest first,
	// BatchSize claims, whatever the budgets.
	ClaimHorizon time.Duration
	// Mode for standard tenants, the Governor's starting platform mode:
	// "auto" (verify, or honor while standard claims back up past
	// HonorOpenAbove; see governor.LoadThresholds), "verify" (every
	// claim checked), "sample" (a sequential sample decides the batch; see
	// internal/policy) or "honor". Operators change it with set-mode.
	Mode string
	// The Governor's thresholds (platform time): honor while more than
	// HonorOpenAbove standard claims are open, back to verifying at
	// HonorOpenBelow; HonorAbove/HonorBelow (claims/hour) are the plan's
	// arrival rule, for Governors started before the backlog rule; no
	// automatic switch within ModeDwell of the last; a warning above
	// QueueWarning open claims.
	HonorAbove     int
	HonorBelow     int
	HonorOpenAbove int
	HonorOpenBelow int
	ModeDwell      time.Duration
	QueueWarning   int
	// UserRiskTTL is how long a user with a false claim is verified one by
	// one (before Speed).
	UserRiskTTL time.Duration
	// EvidenceRetention is how long stored evidence (comment texts,
	// usernames from reads and webhooks) is kept (before Speed).
	EvidenceRetention time.Duration

	// WebhookAddr is where the worker serves Meta's webhooks
	// (POST/GET /webhooks/meta); empty: no webhook endpoint.
	WebhookAddr string
	// WebhookVerifyTokenRef names the verify token of the subscription
	// handshake ("env:NAME" or "file:PATH").
	WebhookVerifyTokenRef string
	// PayloadKeysRef names the keys that encrypt Temporal payloads
	// ("env:NAME" or "file:PATH"; see internal/codec for the format, the
	// first key seals); empty: payloads are not encrypted. Every worker and
	// starter of a deployment needs the same keys.
	PayloadKeysRef string
	// TokenKeysRef names the master keys that wrap tenants' connected
	// tokens in the store ("env:NAME" or "file:PATH", the same line format
	// as the payload keys, the first wraps; see internal/vault); empty:
	// tokens cannot be connected, only configured by reference.
	TokenKeysRef string
	// TokenHealthEvery is how often the token-health Schedule asks Meta
	// about every token (before Speed).
	TokenHealthEvery time.Duration
	// TokenExpiringWithin: a token expiring sooner (Meta's time) is
	// reported expiring, for the tenant to reconnect in time.
	TokenExpiringWithin time.Duration
	// CodecCORSOrigin is the Temporal Web UI's origin, allowed to call the
	// codec server (/codec on the API's address) from the browser.
	CodecCORSOrigin string
	// MetricsAddr is where the worker serves Prometheus metrics (/metrics);
	// empty: off.
	MetricsAddr string
	// APIAddr is where the worker serves the platform API (/v1/...; Meta's
	// webhooks too when they are configured); empty: no API.
	APIAddr string

	LogLevel string
}

// Default returns the embedded-setup defaults.
func Default() Config {
	return Config{
		TemporalAddress:   "127.0.0.1:7233",
		Namespace:         "default",
		StoreURL:          "sqlite:.data/verifier.db",
		GraphURL:          "http://127.0.0.1:8088/",
		GraphVersion:      "v21.0",
		AppID:             "100000000000001",
		AppSecretRef:      "file:.data/secrets/app_secret",
		PlatformTokenID:   "platform",
		Speed:             1,
		Interval:          time.Minute,
		BatchSize:         500,
		BacklogBatchSize:  5000,
		LeaseTTL:          10 * time.Minute,
		RecheckDelay:      2 * time.Minute,
		ClaimHorizon:      time.Hour,
		Mode:              "auto",
		HonorAbove:        20_000,
		HonorBelow:        16_000,
		HonorOpenAbove:    5_000,
		HonorOpenBelow:    1_000,
		ModeDwell:         10 * time.Minute,
		QueueWarning:      5_000,
		UserRiskTTL:       24 * time.Hour,
		EvidenceRetention: 48 * time.Hour,
		TokenHealthEvery:  24 * time.Hour,
		// A week for the tenant to reconnect (tokens.DefaultExpiringWithin).
		TokenExpiringWithin: 7 * 24 * time.Hour,
		LogLevel:            "info",
	}
}

// RegisterFlags binds c's fields to flags on fs, taking each default from its
// environment variable when set.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	str := func(p *string, name, env, usage string) {
		fs.StringVar(p, name, envOr(env, *p), usage+" (env "+env+")")
	}
	dur := func(p *time.Duration, name, env, usage string) {
		if v, err := time.ParseDuration(os.Getenv(env)); err == nil {
			*p = v
		}
		fs.DurationVar(p, name, *p, usage+" (env "+env+")")
	}
	num := func(p *int, name, env, usage string) {
		if v, err := strconv.Atoi(os.Getenv(env)); err == nil {
			*p = v
		}
		fs.IntVar(p, name, *p, usage+" (env "+env+")")
	}
	str(&c.TemporalAddress, "temporal-address", "TEMPORAL_ADDRESS", "Temporal frontend host:port")
	str(&c.Namespace, "namespace", "TEMPORAL_NAMESPACE", "Temporal namespace")
	str(&c.StoreURL, "store", "STORE_URL", "task store: postgres://... or sqlite:PATH")
	str(&c.GraphURL, "graph-url", "META_GRAPH_URL", "Graph API base URL")
	str(&c.GraphVersion, "graph-version", "META_GRAPH_VERSION", "Graph API version")
	str(&c.AppID, "app-id", "META_APP_ID", "Meta app id")
	str(&c.AppSecretRef, "app-secret", "META_APP_SECRET_REF", `where the app secret is: "env:NAME" or "file:PATH"; empty disables appsecret_proof`)
	str(&c.PlatformTokenID, "platform-token", "PLATFORM_TOKEN_ID", "id of the platform token in the store")
	if v, err := strconv.ParseFloat(os.Getenv("SPEED"), 64); err == nil {
		c.Speed = v
	}
	fs.Float64Var(&c.Speed, "speed", c.Speed, "time acceleration for intervals, leases and budget windows (env SPEED)")
	dur(&c.Interval, "interval", "DISPATCH_INTERVAL", "schedule interval before speed-up")
	num(&c.BatchSize, "batch-size", "BATCH_SIZE", "claims per Dispatcher run")
	num(&c.BacklogBatchSize, "backlog-batch-size", "BACKLOG_BATCH_SIZE", "claims per Dispatcher run while standard tenants are on honor (a backlog); 0: batch-size")
	dur(&c.LeaseTTL, "lease-ttl", "LEASE_TTL", "lease on claimed claims before speed-up")
	dur(&c.RecheckDelay, "recheck-delay", "RECHECK_DELAY", "grace before re-checking a claim without evidence, before speed-up")
	dur(&c.ClaimHorizon, "claim-horizon", "CLAIM_HORIZON", "lease per tenant only what its token can read within this (platform time; 0: no budget bound)")
	str(&c.Mode, "mode", "VERIFICATION_MODE", "standard tenants' starting mode: auto (verify, honor while claims back up), verify, sample or honor")
	num(&c.HonorOpenAbove, "honor-open-above", "HONOR_OPEN_ABOVE", "auto mode: honor while more than this many standard claims are open")
	num(&c.HonorOpenBelow, "honor-open-below", "HONOR_OPEN_BELOW", "auto mode: back to verifying at this many open standard claims")
	num(&c.HonorAbove, "honor-above", "HONOR_ABOVE", "auto mode on the plan's arrival rule (Governors from before the backlog rule): honor above this many claims/hour")
	num(&c.HonorBelow, "honor-below", "HONOR_BELOW", "auto mode on the arrival rule: back to sampling below this many claims/hour")
	dur(&c.ModeDwell, "mode-dwell", "MODE_DWELL", "auto mode: least time between switches, before speed-up")
	num(&c.QueueWarning, "queue-warning", "QUEUE_WARNING", "warn above this many open claims")
	dur(&c.EvidenceRetention, "evidence-retention", "EVIDENCE_RETENTION", "how long stored evidence (comment texts, usernames) is kept, before speed-up")
	dur(&c.UserRiskTTL, "user-risk-ttl", "USER_RISK_TTL", "how long a user with a false claim is verified one by one, before speed-up; 0 disables")
	str(&c.WebhookAddr, "webhook-addr", "WEBHOOK_ADDR", "host:port to serve Meta webhooks on (/webhooks/meta); empty: off")
	str(&c.WebhookVerifyTokenRef, "webhook-verify-token", "META_WEBHOOK_VERIFY_TOKEN_REF", `where the webhook verify token is: "env:NAME" or "file:PATH"`)
	str(&c.PayloadKeysRef, "payload-keys", "PAYLOAD_KEYS_REF", `where the payload encryption keys are: "env:NAME" or "file:PATH" (lines "<id>:<base64 32 bytes>", the first seals); empty: payloads in clear`)
	str(&c.TokenKeysRef, "token-keys", "TOKEN_KEYS_REF", `where the master keys of connected tokens are: "env:NAME" or "file:PATH" (lines "<id>:<base64 32 bytes>", the first wraps); empty: tokens cannot be connected`)
	dur(&c.TokenHealthEvery, "token-health-every", "TOKEN_HEALTH_EVERY", "how often every token's health is checked with debug_token, before speed-up")
	dur(&c.TokenExpiringWithin, "token-expiring-within", "TOKEN_EXPIRING_WITHIN", "report a token expiring this long before it expires (Meta's time)")
	str(&c.CodecCORSOrigin, "codec-cors-origin", "CODEC_CORS_ORIGIN", "the Temporal Web UI's origin, allowed to call the codec server (e.g. http://127.0.0.1:8233)")
	str(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "host:port to serve Prometheus metrics on (/metrics); empty: off")
	str(&c.APIAddr, "api-addr", "API_ADDR", "host:port to serve the platform API on (/v1/claims, /v1/verdicts; /webhooks/meta too when webhooks are configured); empty: off")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "debug, info, warn or error")
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Speed <= 0 {
		errs = append(errs, fmt.Errorf("speed must be > 0, got %v", c.Speed))
	}
	if c.BatchSize <= 0 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch size must be 1..10000, got %d", c.BatchSize))
	}
	if c.BacklogBatchSize < 0 || c.BacklogBatchSize > 10000 {
		errs = append(errs, fmt.Errorf("backlog batch size must be 0..10000, got %d", c.BacklogBatchSize))
	}
	if c.Interval <= 0 || c.LeaseTTL <= 0 || c.RecheckDelay < 0 || c.ClaimHorizon < 0 {
		errs = append(errs, errors.New("interval and lease TTL must be > 0, re-check delay and claim horizon >= 0"))
	}
	if c.Scaled(c.Interval) < time.Second {
		errs = append(errs, fmt.Errorf("interval %v at speed %v is under a second, the Schedule's resolution", c.Interval, c.Speed))
	}
	if _, err := governor.ParseMode(c.Mode); err != nil {
		errs = append(errs, err)
	}
	if err := c.Thresholds().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.EvidenceRetention <= 0 {
		errs = append(errs, fmt.Errorf("evidence retention must be positive, got %v", c.EvidenceRetention))
	}
	if c.UserRiskTTL < 0 {
		errs = append(errs, fmt.Errorf("user risk TTL %v is negative", c.UserRiskTTL))
	}
	if c.AppSecretRef != "" {
		if err := secret.CheckRef(c.AppSecretRef); err != nil {
			errs = append(errs, fmt.Errorf("app secret: %w", err))
		}
	}
	if c.PayloadKeysRef != "" {
		if err := secret.CheckRef(c.PayloadKeysRef); err != nil {
			errs = append(errs, fmt.Errorf("payload keys: %w", err))
		}
	}
	if c.TokenKeysRef != "" {
		if err := secret.CheckRef(c.TokenKeysRef); err != nil {
			errs = append(errs, fmt.Errorf("token keys: %w", err))
		}
	}
	if c.TokenHealthEvery <= 0 || c.TokenExpiringWithin < 0 {
		errs = append(errs, fmt.Errorf("token health interval must be positive and the expiring window not negative, got %v and %v", c.TokenHealthEvery, c.TokenExpiringWithin))
	}
	if c.WebhookAddr != "" {
		if c.AppSecretRef == "" {
			errs = append(errs, errors.New("webhooks need the app secret (META_APP_SECRET_REF) to check signatures"))
		}
		if err := secret.CheckRef(c.WebhookVerifyTokenRef); err != nil {
			errs = append(errs, fmt.Errorf("webhook verify token: %w", err))
		}
	}
	if c.StoreURL == "" || c.TemporalAddress == "" || c.PlatformTokenID == "" {
		errs = append(errs, errors.New("store URL, Temporal address and platform token id are required"))
	}
	return errors.Join(errs...)
}

// Thresholds are the Governor's thresholds from the configuration.
func (c Config) Thresholds() governor.LoadThresholds {
	return governor.DefaultLoadThresholds().Merge(governor.LoadThresholds{
		HonorAbove: c.HonorAbove, HonorBelow: c.HonorBelow, HonorOpenAbove: c.HonorOpenAbove, HonorOpenBelow: c.HonorOpenBelow, MinDwell: governor.Duration(c.ModeDwell), QueueWarning: c.QueueWarning,
	})
}

// Scaled divides a simulated duration by the speed factor.
func (c Config) Scaled(d time.Duration) time.Duration {
	if c.Speed <= 0 {
		return d
	}
	return time.Duration(float64(d) / c.Speed)
}

// AppSecret resolves the app secret, or returns an empty value when none is configured.
func (c Config) AppSecret() (secret.Value, error) {
	if c.AppSecretRef == "" {
		return secret.Value{}, nil
	}
	return secret.Resolve(c.AppSecretRef)
}
