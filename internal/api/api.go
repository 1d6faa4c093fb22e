// Package api is the platform's HTTP API: claims in (POST /v1/claims), a
// claim's state (GET /v1/claims/{id}), the verdict feed the platform pays
// rewards from (GET /v1/verdicts) and the tenant's own Meta token
// (POST/GET /v1/tokens), each behind a per-tenant API key that sees its
// tenant's data and nothing else; and Meta's deauthorization callback
// (POST /meta/deauthorize, signed with the app secret). Errors are JSON with a code; no
// internal detail reaches a client. openapi.json documents it; a test
// checks the document against Routes.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
)

// OpenAPI is the API's OpenAPI 3 document, served at GET /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Route is one endpoint, as registered and as documented.
type Route struct{ Method, Path string }

// Routes are the endpoints Handler serves (the webhook aside).
var Routes = []Route{
	{http.MethodPost, "/v1/claims"},
	{http.MethodGet, "/v1/claims/{id}"},
	{http.MethodGet, "/v1/verdicts"},
	{http.MethodGet, "/v1/openapi.json"},
	{http.MethodPost, "/v1/tokens"},
	{http.MethodGet, "/v1/tokens"},
}

// Defaults for Server's limits.
const (
	DefaultMaxBody   = 4 << 20 // bytes of a request body
	DefaultMaxBatch  = 1000    // claims in one POST /v1/claims
	DefaultFeedLimit = 100
	MaxFeedLimit     = 1000
)

// Server serves the platform API from the task store.
type Server struct {
	Store    store.Store
	Webhook  http.Handler // Meta's webhook receiver, at /webhooks/meta; nil: not served
	Codec    http.Handler // the payload codec server, at /codec/ (encode, decode); nil: not served
	Tokens   TokenService // tenants' tokens (/v1/tokens) and Meta's deauthorization callback; nil: refused as not configured
	Log      *zap.Logger  // nil: no logging
	Now      func() time.Time
	MaxBody  int64 // 0: DefaultMaxBody
	MaxBatch int   // 0: DefaultMaxBatch
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	handlers := map[Route]http.HandlerFunc{
		Routes[0]: s.authed(s.submit),
		Routes[1]: s.authed(s.getClaim),
		Routes[2]: s.authed(s.verdicts),
		Routes[3]: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(OpenAPI)
		},
		Routes[4]: s.authed(s.connectToken),
		Routes[5]: s.authed(s.listTokens),
	}
	for _, r := range Routes {
		mux.Handle(r.Method+" "+r.Path, handlers[r])
	}
	if s.Webhook != nil {
		mux.Handle("/webhooks/meta", s.Webhook)
	}
	mux.HandleFunc(http.MethodPost+" "+DeauthorizePath, s.deauthorize)
	if s.Codec != nil {
		// The Web UI calls <endpoint>/decode with its own auth; the keys
		// never leave this process.
		mux.Handle("/codec/", s.Codec)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s.recoverPanics(mux)
}

// errorBody is every error response: {"error":{"code":"...","message":"..."}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// recoverPanics answers a handler's panic with a plain 500: the stack goes
// to the log, never to the client.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.logError("handler panicked", zap.Any("panic", p), zap.String("path", r.URL.Path), zap.Stack("stack"))
				writeError(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) logError(msg string, fields ...zap.Field) {
	if s.Log != nil {
		s.Log.Error(msg, fields...)
	}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// failed answers a store error: logged, and a 500 without its detail.
func (s *Server) failed(w http.ResponseWriter, what string, err error) {
	s.logError(what, zap.Error(err))
	writeError(w, http.StatusInternalServerError, "internal", "internal error")
}

type tenantKey struct{}

// authed requires "Authorization: Bearer <API key>" and puts the key's
// tenant in the request's context.
func (s *Server) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", `an API key is required: "Authorization: Bearer <key>"`)
			return
		}
		key := secret.New(raw) // prints as [redacted] wherever it might be logged
		tenant, err := s.Store.APIKeyTenant(r.Context(), key.Reveal())
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusUnauthorized, "unauthorized", "unknown API key")
			return
		}
		if err != nil {
			s.failed(w, "API key lookup", err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	}
}

func tenantOf(r *http.Request) string { return r.Context().Value(tenantKey{}).(string) }

// SubmitRequest is POST /v1/claims: claims in the claim format of `starter
// submit` (one object each, unknown fields refused), all of the key's tenant.
type SubmitRequest struct {
	Claims []json.RawMessage `json:"claims"`
}

// SubmitResult is one claim's outcome, in request order.
type SubmitResult struct {
	Index  int    `json:"index"`
	Status string `json:"status"` // accepted, duplicate or refused
	ID     int64  `json:"id,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// The statuses of a submitted claim.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRefused   = "refused"
)

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	maxBody, maxBatch := s.MaxBody, s.MaxBatch
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	var req SubmitRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil {
		// A second object after the first would be silently dropped: refuse.
		if _, err = dec.Token(); err == io.EOF {
			err = nil
		} else if err == nil || !errors.As(err, new(*http.MaxBytesError)) {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is over %d bytes", maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", `the body must be {"claims":[...]}: `+strings.TrimPrefix(err.Error(), "json: "))
		return
	}
	if len(req.Claims) == 0 || len(req.Claims) > maxBatch {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("send 1 to %d claims, got %d", maxBatch, len(req.Claims)))
		return
	}
	tenant := tenantOf(r)
	results := make([]SubmitResult, len(req.Claims))
	var valid []claim.Claim
	var at []int // request index of each valid claim
	for i, raw := range req.Claims {
		results[i].Index = i
		c, err := claim.Parse(raw)
		switch {
		case err != nil:
			results[i].Status, results[i].Reason = StatusRefused, err.Error()
		case c.Tenant != tenant:
			results[i].Status, results[i].Reason = StatusRefused, fmt.Sprintf("tenant %q is not the API key's tenant", c.Tenant)
		default:
			valid, at = append(valid, c), append(at, i)
		}
	}
	if len(valid) > 0 {
		stored, err := s.Store.Submit(r.Context(), valid, s.now())
		if err != nil {
			s.failed(w, "submit claims", err)
			return
		}
		for j, res := range stored {
			results[at[j]].ID, results[at[j]].Status = res.ID, StatusAccepted
			if res.Duplicate {
				results[at[j]].Status = StatusDuplicate
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

// ClaimView is a claim as the platform reads it.
type ClaimView struct {
	ID          int64           `json:"id"`
	Tenant      string          `json:"tenant"`
	Key         string          `json:"key"`
	User        string          `json:"user"`
	Kind        string          `json:"kind"`
	Target      string          `json:"target"`
	Status      string          `json:"status"` // pending, leased, decided or quarantined (our check of it failed; an operator releases it)
	SubmittedAt time.Time       `json:"submitted_at"`
	Verdict     string          `json:"verdict,omitempty"`
	Method      string          `json:"method,omitempty"`
	Evidence    json.RawMessage `json:"evidence,omitempty"`
	DecidedAt   *time.Time      `json:"decided_at,omitempty"`
	RevokedFrom string          `json:"revoked_from,omitempty"`
	RevokedAt   *time.Time      `json:"revoked_at,omitempty"`
	Cursor      string          `json:"cursor,omitempty"` // its place in the verdict feed
}

func view(c store.Claim) ClaimView {
	v := ClaimView{ID: c.ID, Tenant: c.Tenant, Key: c.Key, User: c.User, Kind: string(c.Kind), Target: c.Target,
		Status: c.Status, SubmittedAt: c.SubmittedAt.UTC(), Verdict: c.Verdict, Method: c.Method, RevokedFrom: c.RevokedFrom}
	if json.Valid([]byte(c.Evidence)) {
		v.Evidence = json.RawMessage(c.Evidence)
	} else if c.Evidence != "" {
		v.Evidence, _ = json.Marshal(c.Evidence)
	}
	if !c.DecidedAt.IsZero() {
		t := c.DecidedAt.UTC()
		v.DecidedAt = &t
	}
	if !c.RevokedAt.IsZero() {
		t := c.RevokedAt.UTC()
		v.RevokedAt = &t
	}
	if c.FeedSeq > 0 {
		v.Cursor = strconv.FormatInt(c.FeedSeq, 10)
	}
	return v
}

func (s *Server) getClaim(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "the claim id must be a positive integer")
		return
	}
	claims, err := s.Store.Claims(r.Context(), []int64{id})
	if err != nil {
		s.failed(w, "read claim", err)
		return
	}
	// Another tenant's claim is not found either: a key learns nothing of it.
	if len(claims) != 1 || claims[0].Tenant != tenantOf(r) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no claim %d", id))
		return
	}
	writeJSON(w, http.StatusOK, view(claims[0]))
}

// Feed is GET /v1/verdicts: claims decided or revoked after the cursor, in
// the order they were; Next is the cursor for the following page (the same
// one when nothing is new).
type Feed struct {
	Verdicts []ClaimView `json:"verdicts"`
	Next     string      `json:"next"`
}

func (s *Server) verdicts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after := int64(0)
	if c := q.Get("after"); c != "" {
		var err error
		if after, err = strconv.ParseInt(c, 10, 64); err != nil || after < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "after must be a cursor from an earlier page")
			return
		}
	}
	limit := DefaultFeedLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxFeedLimit {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit must be 1 to %d", MaxFeedLimit))
			return
		}
		limit = n
	}
	claims, err := s.Store.Feed(r.Context(), tenantOf(r), after, limit)
	if err != nil {
		s.failed(w, "verdict feed", err)
		return
	}
	feed := Feed{Verdicts: make([]ClaimView, 0, len(claims)), Next: strconv.FormatInt(after, 10)}
	for _, c := range claims {
		feed.Verdicts = append(feed.Verdicts, view(c))
		feed.Next = strconv.FormatInt(c.FeedSeq, 10)
	}
	writeJSON(w, http.StatusOK, feed)
}
