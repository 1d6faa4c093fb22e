// Package webhook receives Meta's webhooks (Instagram comments and mentions,
// Facebook Page feed comments and reactions) and stores what they report as
// evidence, so a claim with webhook evidence is verified without a Graph API
// call.
//
// A delivery is trusted only when its X-Hub-Signature-256 header is the
// HMAC-SHA256 of the raw body under the app secret; anything else is refused
// before it is parsed. Meta retries a delivery that is not answered 200 for up
// to 36 hours, so the Sink must be idempotent, and a Sink failure is answered
// 500 to have Meta deliver again.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/secret"
)

// Sink stores actions; it must be idempotent by (Target, Edge, ActionID),
// because Meta retries deliveries for 36 hours.
type Sink interface {
	SaveActions(ctx context.Context, actions []Action) (newActions int, err error)
}

// DefaultMaxBody is the body limit when Handler.MaxBody is not set.
const DefaultMaxBody int64 = 1 << 20

// SignatureHeader is the header Meta signs deliveries in.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// Handler is the webhook endpoint: GET answers Meta's subscription handshake,
// POST receives deliveries. Use it by pointer; it must not be copied after
// first use.
type Handler struct {
	AppSecret   secret.Value // HMAC key of X-Hub-Signature-256
	VerifyToken secret.Value // the Verify Token set in the App Dashboard
	Sink        Sink
	Logger      *zap.Logger // nil: no logs. Never given the secrets, the body or personal data.
	MaxBody     int64       // bytes; 0 or less: DefaultMaxBody

	stats counters
}

// Stats counts what the handler did since it was created.
type Stats struct {
	Accepted   int64 // deliveries answered 200
	Refused    int64 // deliveries with a missing or wrong signature (401)
	Malformed  int64 // signed deliveries that are not a webhook payload (400)
	TooLarge   int64 // deliveries over MaxBody (413)
	Failed     int64 // deliveries answered 500: the Sink failed, or the handler is not configured
	Actions    int64 // actions in accepted deliveries
	NewActions int64 // of those, actions the Sink did not know yet
	Duplicates int64 // accepted deliveries with actions, all of them already known
	Ignored    int64 // changes in accepted deliveries that are not evidence (other fields and items)
}

type counters struct {
	accepted, refused, malformed, tooLarge, failed atomic.Int64
	actions, newActions, duplicates, ignored       atomic.Int64
}

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() Stats {
	c := &h.stats
	return Stats{
		Accepted:   c.accepted.Load(),
		Refused:    c.refused.Load(),
		Malformed:  c.malformed.Load(),
		TooLarge:   c.tooLarge.Load(),
		Failed:     c.failed.Load(),
		Actions:    c.actions.Load(),
		NewActions: c.newActions.Load(),
		Duplicates: c.duplicates.Load(),
		Ignored:    c.ignored.Load(),
	}
}

// Sign returns the X-Hub-Signature-256 value Meta sends with body:
// "sha256=" and the lowercase hex HMAC-SHA256 of body keyed by the app secret.
func Sign(appSecret secret.Value, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(appSecret, body))
}

func mac(appSecret secret.Value, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(appSecret.Reveal()))
	m.Write(body)
	return m.Sum(nil)
}

// validSignature reports whether header is "sha256=<hex>" with the HMAC of
// body, compared in constant time.
func validSignature(appSecret secret.Value, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	return hmac.Equal(got, mac(appSecret, body))
}

func (h *Handler) logger() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.handshake(w, r)
	case http.MethodPost:
		h.deliver(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// handshake answers the verification request Meta sends when the callback URL
// is configured: hub.mode=subscribe, hub.verify_token, hub.challenge.
func (h *Handler) handshake(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("hub.mode") != "subscribe" || h.VerifyToken.Empty() || !sameToken(q.Get("hub.verify_token"), h.VerifyToken.Reveal()) {
		h.logger().Warn("webhook handshake refused", zap.String("mode", q.Get("hub.mode")), zap.String("remote", r.RemoteAddr))
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	h.logger().Info("webhook handshake accepted")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// sameToken compares in constant time, including the length: both sides are
// hashed first.
func sameToken(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func (h *Handler) deliver(w http.ResponseWriter, r *http.Request) {
	log := h.logger()
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.ContentLength > limit {
		h.stats.tooLarge.Add(1)
		log.Warn("webhook body too large", zap.Int64("content_length", r.ContentLength), zap.Int64("limit", limit))
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			h.stats.tooLarge.Add(1)
			log.Warn("webhook body too large", zap.Int64("limit", limit))
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		h.stats.malformed.Add(1)
		log.Warn("webhook body unreadable", zap.Error(err))
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	if h.AppSecret.Empty() || h.Sink == nil {
		// Never accept unsigned deliveries; 500 has Meta retry once configured.
		h.stats.failed.Add(1)
		log.Error("webhook handler not configured", zap.Bool("app_secret_set", !h.AppSecret.Empty()), zap.Bool("sink_set", h.Sink != nil))
		http.Error(w, "not configured", http.StatusInternalServerError)
		return
	}
	if !validSignature(h.AppSecret, body, r.Header.Get(SignatureHeader)) {
		h.stats.refused.Add(1)
		log.Warn("webhook signature refused",
			zap.Bool("header_present", r.Header.Get(SignatureHeader) != ""),
			zap.Int("bytes", len(body)), zap.String("remote", r.RemoteAddr))
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	actions, ignored, err := Parse(body)
	if err != nil {
		h.stats.malformed.Add(1)
		log.Warn("webhook payload malformed", zap.Error(err), zap.Int("bytes", len(body)))
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	newActions := 0
	if len(actions) > 0 {
		newActions, err = h.Sink.SaveActions(r.Context(), actions)
		if err != nil {
			h.stats.failed.Add(1)
			log.Error("webhook actions not stored", zap.Error(err), zap.Int("actions", len(actions)))
			http.Error(w, "not stored", http.StatusInternalServerError)
			return
		}
	}
	h.stats.accepted.Add(1)
	h.stats.actions.Add(int64(len(actions)))
	h.stats.newActions.Add(int64(newActions))
	h.stats.ignored.Add(int64(ignored))
	duplicate := len(actions) > 0 && newActions == 0
	if duplicate {
		h.stats.duplicates.Add(1)
	}
	log.Info("webhook delivery stored",
		zap.Int("actions", len(actions)), zap.Int("new_actions", newActions),
		zap.Int("ignored", ignored), zap.Bool("duplicate", duplicate))
	w.WriteHeader(http.StatusOK)
}
