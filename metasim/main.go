// Command metasim serves the local stand-in for Meta's Graph API (see
// internal/metasim) over HTTP.
//
// Flags fall back to METASIM_* environment variables (METASIM_ADDR,
// METASIM_SEED, METASIM_BRANDS, METASIM_PREMIUM, METASIM_USERS, METASIM_SPEED,
// METASIM_APP_SECRET_FILE, METASIM_WRITE_CONFIG, METASIM_SECRETS_DIR,
// METASIM_LATENCY, METASIM_ERROR_RATE, METASIM_WEBHOOK_URL,
// METASIM_WEBHOOK_VERIFY_TOKEN, METASIM_WEBHOOK_SHAPE,
// METASIM_WEBHOOK_DUPLICATES, METASIM_WEBHOOK_DELAY, METASIM_WEBHOOK_DROP,
// METASIM_WEBHOOK_BATCH, METASIM_WEBHOOK_WAIT, METASIM_DEAUTHORIZE_URL).
//
// With -webhook-url, metasim subscribes that URL to its webhooks once it
// listens: it performs Meta's hub.challenge handshake, retrying for
// -webhook-wait (the receiver may start later), and exits if the handshake
// never succeeds. Prefer METASIM_WEBHOOK_VERIFY_TOKEN to the flag, which
// other users can see in the process list.
//
// With -deauthorize-url, POST /_sim/tokens/{id}/deauthorize sends Meta's
// signed_request (signed with the app secret) to that URL.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/socialproof/verifier/internal/metasim"
)

func env(name, def string) string {
	if v, ok := os.LookupEnv("METASIM_" + name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	v := env(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		log.Fatalf("metasim: METASIM_%s=%q is not an integer", name, v)
	}
	return n
}

func envFloat(name string, def float64) float64 {
	v := env(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		log.Fatalf("metasim: METASIM_%s=%q is not a number", name, v)
	}
	return f
}

func envDuration(name string, def time.Duration) time.Duration {
	v := env(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Fatalf("metasim: METASIM_%s=%q is not a duration", name, v)
	}
	return d
}

// parseBudget reads "200/1h" or "4800/24h".
func parseBudget(s string) (metasim.Budget, error) {
	calls, window, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(calls)
	if !ok || err != nil || n <= 0 {
		return metasim.Budget{}, fmt.Errorf("%q is not calls/window, e.g. 200/1h", s)
	}
	d, err := time.ParseDuration(window)
	if err != nil || d <= 0 {
		return metasim.Budget{}, fmt.Errorf("%q: window %q is not a duration", s, window)
	}
	return metasim.Budget{Calls: n, Window: d}, nil
}

func main() {
	log.SetFlags(0)
	var (
		addr       = flag.String("addr", env("ADDR", "127.0.0.1:8088"), "listen address")
		seed       = flag.Int64("seed", int64(envInt("SEED", 1)), "world seed")
		brands     = flag.Int("brands", envInt("BRANDS", 3), "brands (tenants)")
		premium    = flag.Int("premium", envInt("PREMIUM", 1), "premium brands (the last ones), -1 for none")
		users      = flag.Int("users", envInt("USERS", 2000), "claimant users")
		speed      = flag.Float64("speed", envFloat("SPEED", 1), "time acceleration of the sim clock")
		secretFile = flag.String("app-secret-file", env("APP_SECRET_FILE", ""), "app secret file (created from the seed if missing); when set, appsecret_proof is required")
		writeCfg   = flag.String("write-config", env("WRITE_CONFIG", ""), "write the engine config here at start")
		secretsDir = flag.String("secrets-dir", env("SECRETS_DIR", ""), "directory for token secrets (default: <config dir>/secrets)")
		latency    = flag.Duration("latency", envDuration("LATENCY", 0), "injected latency per Graph call")
		errorRate  = flag.Float64("error-rate", envFloat("ERROR_RATE", 0), "share of Graph calls answered 5xx")
		platformB  = flag.String("platform-budget", env("PLATFORM_BUDGET", "200/1h"), "platform token budget: calls/window (window 1h or 24h, simulated time)")
		tenantB    = flag.String("tenant-budget", env("TENANT_BUDGET", "200/1h"), "premium tenants' token budget: calls/window")

		hookURL   = flag.String("webhook-url", env("WEBHOOK_URL", ""), "subscribe this URL to webhooks (Instagram comments/mentions, Page feed) at start")
		hookToken = flag.String("webhook-verify-token", env("WEBHOOK_VERIFY_TOKEN", ""), "hub.verify_token for the webhook handshake (prefer METASIM_WEBHOOK_VERIFY_TOKEN)")
		hookShape = flag.String("webhook-shape", env("WEBHOOK_SHAPE", "facebook"), "webhook payload shape: facebook, instagram (flat Instagram-Login entries) or mixed")
		hookDups  = flag.Float64("webhook-duplicates", envFloat("WEBHOOK_DUPLICATES", 0), "share of webhook POSTs sent a second time, later (0..1)")
		hookDelay = flag.Duration("webhook-delay", envDuration("WEBHOOK_DELAY", 0), "wall time from an action to its webhook")
		hookDrop  = flag.Float64("webhook-drop", envFloat("WEBHOOK_DROP", 0), "share of webhook events never delivered (0..1)")
		hookBatch = flag.Int("webhook-batch", envInt("WEBHOOK_BATCH", 1), "webhook events per POST at most")
		hookWait  = flag.Duration("webhook-wait", envDuration("WEBHOOK_WAIT", 30*time.Second), "how long to retry the webhook handshake at start")

		deauthURL = flag.String("deauthorize-url", env("DEAUTHORIZE_URL", ""), "the app's Deauthorize Callback URL: where POST /_sim/tokens/{id}/deauthorize sends Meta's signed_request")
	)
	flag.Parse()
	switch *hookShape {
	case "facebook", "instagram", "mixed":
	default:
		log.Fatalf("metasim: -webhook-shape must be facebook, instagram or mixed, not %q", *hookShape)
	}
	if *hookDups < 0 || *hookDups > 1 || *hookDrop < 0 || *hookDrop > 1 {
		log.Fatalf("metasim: -webhook-duplicates and -webhook-drop must be within 0..1")
	}
	for _, f := range []struct{ name, v string }{{"webhook-url", *hookURL}, {"deauthorize-url", *deauthURL}} {
		if err := checkURL(f.v); err != nil {
			log.Fatalf("metasim: -%s: %v", f.name, err)
		}
	}
	platformBudget, err := parseBudget(*platformB)
	if err != nil {
		log.Fatalf("metasim: -platform-budget: %v", err)
	}
	tenantBudget, err := parseBudget(*tenantB)
	if err != nil {
		log.Fatalf("metasim: -tenant-budget: %v", err)
	}

	secretNote := ""
	cfg := metasim.Config{Seed: *seed, Brands: *brands, Premium: *premium, Users: *users, Speed: *speed,
		PlatformBudget: platformBudget, TenantBudget: tenantBudget, DeauthorizeURL: *deauthURL}
	if *secretFile != "" {
		secret, created, err := loadSecret(*secretFile, *seed)
		if err != nil {
			log.Fatalf("metasim: %v", err)
		}
		if created {
			secretNote = " (new app secret written to " + *secretFile + ")"
		}
		cfg.AppSecret = secret
	}
	sim := metasim.New(cfg)
	sim.SetFaults(metasim.Faults{Latency: *latency, ErrorRate: *errorRate})

	if *writeCfg != "" {
		dir := *secretsDir
		if dir == "" {
			dir = filepath.Join(filepath.Dir(*writeCfg), "secrets")
		}
		if err := sim.WriteEngineConfig(*writeCfg, dir); err != nil {
			log.Fatalf("metasim: %v", err)
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("metasim: %v", err)
	}
	w := sim.World()
	var premiumIDs []string
	media, posts := 0, 0
	for _, b := range w.Brands {
		media += len(b.MediaIDs)
		posts += len(b.PostIDs)
		if b.Tier == "premium" {
			premiumIDs = append(premiumIDs, b.Tenant)
		}
	}
	proof := "off"
	if cfg.AppSecret != "" {
		proof = "required"
	}
	configNote := ""
	if *writeCfg != "" {
		configNote = " config=" + *writeCfg
	}
	log.Printf("metasim: listening on http://%s (Graph %s) seed=%d brands=%d premium=[%s] users=%d media=%d posts=%d tokens=%d speed=%g appsecret_proof=%s%s%s",
		ln.Addr(), w.Version, *seed, len(w.Brands), strings.Join(premiumIDs, ","), len(w.Users), media, posts, len(w.Tokens), w.Speed, proof, secretNote, configNote)

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if *hookURL != "" {
		o := metasim.WebhookOptions{URL: *hookURL, VerifyToken: *hookToken, Shape: *hookShape,
			Duplicates: *hookDups, Delay: *hookDelay, DropRate: *hookDrop, MaxBatch: *hookBatch}
		go func() {
			if err := subscribeWithRetry(ctx, sim, o, *hookWait); err != nil {
				if ctx.Err() == nil {
					log.Fatalf("metasim: webhooks: giving up: %v", err)
				}
				return
			}
			log.Printf("metasim: webhooks: subscribed %s (shape=%s duplicates=%g delay=%s drop=%g batch=%d); actions from now on are delivered, signed with the app secret",
				o.URL, o.Shape, o.Duplicates, o.Delay, o.DropRate, o.MaxBatch)
		}()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("metasim: %v", err)
		}
	case <-ctx.Done():
		log.Printf("metasim: shutting down")
		if *hookURL != "" {
			sim.Close()
			st := sim.WebhookStats()
			log.Printf("metasim: webhooks: events=%d delivered=%d duplicates=%d dropped=%d failed=%d retries=%d canceled=%d",
				st.Events, st.Delivered, st.Duplicates, st.Dropped, st.Failed, st.Retries, st.Canceled)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Printf("metasim: shutdown: %v", err)
		}
	}
}

// checkURL accepts "" (not set) and absolute http(s) URLs. The message
// leaves the URL out: its query may hold a secret.
func checkURL(s string) error {
	if s == "" {
		return nil
	}
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an absolute http(s) URL")
	}
	return nil
}

// subscribeWithRetry subscribes o.URL, retrying the handshake every second
// for up to wait: the receiver may start after metasim.
func subscribeWithRetry(ctx context.Context, sim *metasim.Sim, o metasim.WebhookOptions, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	log.Printf("metasim: webhooks: subscribing %s (handshake, retried for up to %s)", o.URL, wait)
	for try := 1; ; try++ {
		err := sim.Subscribe(o)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no successful handshake with %s within %s: %w", o.URL, wait, err)
		}
		if try == 1 || try%5 == 0 {
			log.Printf("metasim: webhooks: handshake attempt %d failed, retrying: %v", try, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// loadSecret reads the app secret from path, or derives one from the seed and
// writes it there (mode 0600) when the file does not exist.
func loadSecret(path string, seed int64) (secret string, created bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(data))
		if s == "" {
			return "", false, fmt.Errorf("app secret file %s is empty", path)
		}
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	m := hmac.New(sha256.New, []byte("metasim app secret"))
	fmt.Fprintf(m, "seed=%d", seed)
	secret = hex.EncodeToString(m.Sum(nil))[:32]
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", false, err
		}
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return secret, true, nil
}
