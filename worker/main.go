// Command worker runs the verification engine's Temporal worker: the
// claim pipeline, the limiters, the Governor and token health (internal/engine),
// the platform API, the codec server, Meta's webhooks and the metrics.
//
// Configuration comes from flags or environment variables; the defaults fit
// the embedded setup of `make dev` (see the README).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/vault"
	"github.com/socialproof/verifier/internal/webhook"
	"github.com/socialproof/verifier/workflows"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// run is the worker until ctx ends (SIGINT or SIGTERM in main).
func run(ctx context.Context, args []string) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	z, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = z.Sync() }()

	st, err := store.Open(ctx, cfg.StoreURL)
	if err != nil {
		return err
	}
	defer st.Close()
	// The app token's row gives limiter/app (debug_token calls) its budget;
	// `starter setup` makes it too, but a store set up by an older starter
	// lacks it.
	if err := workflows.EnsureAppToken(ctx, st); err != nil {
		return err
	}

	appSecret, err := cfg.AppSecret()
	if err != nil {
		return err
	}
	payloads, err := codec.FromRef(cfg.PayloadKeysRef)
	if err != nil {
		return err
	}
	tokenKeys, err := vault.FromRef(cfg.TokenKeysRef)
	if err != nil {
		return fmt.Errorf("token master keys: %w", err)
	}
	opts, err := cfg.ClientOptions()
	if err != nil {
		return err
	}
	opts.Logger = logging.Temporal(z)
	if payloads != nil {
		opts.DataConverter = payloads.DataConverter()
		z.Info("payloads encrypted", zap.String("activeKey", payloads.ActiveKey()))
	}
	var reg *prometheus.Registry
	if cfg.MetricsAddr != "" {
		// The SDK's metrics (task latencies, pollers, activity outcomes)
		// go to the same registry as the engine's, through tally.
		reg = prometheus.NewRegistry()
		scope, closer := tally.NewRootScope(tally.ScopeOptions{
			CachedReporter:  tallyprom.NewReporter(tallyprom.Options{Registerer: reg}),
			Separator:       tallyprom.DefaultSeparator,
			SanitizeOptions: &tallyprom.DefaultSanitizerOpts,
		}, time.Second)
		defer func() { _ = closer.Close() }()
		opts.MetricsHandler = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	}
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", cfg.TemporalAddress, err)
	}
	defer c.Close()

	w := worker.New(c, workflows.TaskQueue, worker.Options{})
	deps := engine.Deps{
		Store: st,
		Graph: graph.New(graph.Config{
			BaseURL: cfg.GraphURL, Version: cfg.GraphVersion, AppID: cfg.AppID, AppSecret: appSecret,
		}),
		PlatformTokenID: cfg.PlatformTokenID,
		Vault:           tokenKeys,
		Temporal:        c,
		Speed:           cfg.Speed,
		UserRiskTTL:     cfg.Scaled(cfg.UserRiskTTL),
	}
	var graphCalls *prometheus.CounterVec
	if reg != nil {
		graphCalls = newGraphCallCounter()
		reg.MustRegister(graphCalls)
		deps.OnGraphCall = func(tokenID string, err error) { graphCalls.WithLabelValues(tokenID, callOutcome(err)).Inc() }
	}
	eng := engine.New(deps)
	eng.Connector.ExpiringWithin = cfg.TokenExpiringWithin
	eng.Register(w)
	z.Info("worker starting",
		zap.String("taskQueue", workflows.TaskQueue),
		zap.String("temporal", cfg.TemporalAddress),
		zap.String("graph", cfg.GraphURL),
		zap.Bool("appsecretProof", !appSecret.Empty()),
		zap.Float64("speed", cfg.Speed))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	// Tenants connect tokens through the API; Meta's deauthorization
	// callback comes to the API's and the webhooks' address alike.
	var connector api.TokenService
	if tokenKeys != nil {
		connector = eng.Connector
		z.Info("tenants' tokens stored encrypted", zap.String("activeKey", tokenKeys.ActiveKey()))
	}
	var hooks *webhook.Handler
	if cfg.WebhookAddr != "" {
		verifyToken, err := secret.Resolve(cfg.WebhookVerifyTokenRef)
		if err != nil {
			w.Stop()
			return fmt.Errorf("webhook verify token: %w", err)
		}
		hooks = &webhook.Handler{AppSecret: appSecret, VerifyToken: verifyToken, Sink: webhook.StoreSink{Store: st}, Logger: z}
		mux := http.NewServeMux()
		mux.Handle(WebhookPath, hooks)
		mux.Handle(api.DeauthorizePath, (&api.Server{Store: st, Tokens: connector, Log: z}).Handler())
		stopWebhooks, err := serveHTTP(cfg.WebhookAddr, mux, "Meta webhooks", z)
		if err != nil {
			w.Stop()
			return err
		}
		defer func() {
			stopWebhooks()
			s := hooks.Stats()
			z.Info("webhooks served", zap.Int64("accepted", s.Accepted), zap.Int64("refused", s.Refused), zap.Int64("newActions", s.NewActions), zap.Int64("duplicates", s.Duplicates))
		}()
	}
	if reg != nil {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			&engineCollector{store: st, temporal: c, webhooks: hooks, log: z, timeout: 10 * time.Second})
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		stopMetrics, err := serveHTTP(cfg.MetricsAddr, mux, "metrics", z)
		if err != nil {
			w.Stop()
			return err
		}
		defer stopMetrics()
	}
	if cfg.APIAddr != "" {
		platform := &api.Server{Store: st, Tokens: connector, Log: z}
		if payloads != nil {
			platform.Codec = payloads.Handler(cfg.CodecCORSOrigin)
		}
		if hooks != nil {
			platform.Webhook = hooks // the same receiver, on the API's address too
		}
		stopAPI, err := serveHTTP(cfg.APIAddr, platform.Handler(), "platform API", z)
		if err != nil {
			w.Stop()
			return err
		}
		defer stopAPI()
	}
	<-ctx.Done()
	w.Stop()
	z.Info("worker stopped")
	return nil
}

// WebhookPath is where Meta posts webhooks (the callback URL is
// http(s)://<WEBHOOK_ADDR host>/webhooks/meta).
const WebhookPath = "/webhooks/meta"

// serveHTTP serves h on addr until the returned stop is called.
func serveHTTP(addr string, h http.Handler, what string, z *zap.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			z.Error("server stopped", zap.String("serving", what), zap.Error(err))
		}
	}()
	z.Info("serving", zap.String("what", what), zap.String("addr", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
