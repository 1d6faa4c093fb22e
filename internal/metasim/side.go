package metasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sideMux serves the simulator's own endpoints under /_sim/. They are not
// Graph calls: they spend no budget and are not in the request log.
func (s *Sim) sideMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /_sim/world", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.World())
	})
	mux.HandleFunc("POST /_sim/claims", s.handleClaims)
	mux.HandleFunc("GET /_sim/truth", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, t := range s.truthRecords() {
			enc.Encode(t)
		}
	})
	mux.HandleFunc("GET /_sim/webhooks", func(w http.ResponseWriter, r *http.Request) {
		on, url, shape := s.webhookSubscribed()
		writeJSON(w, http.StatusOK, map[string]any{"subscribed": on, "url": url, "shape": shape, "stats": s.WebhookStats()})
	})
	mux.HandleFunc("GET /_sim/webhooks/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, e := range s.WebhookEvents() {
			enc.Encode(e)
		}
	})
	mux.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, r *http.Request) {
		reqs := s.Requests()
		if reqs == nil {
			reqs = []Request{}
		}
		writeJSON(w, http.StatusOK, reqs)
	})
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			LatencyMS      *float64 `json:"latency_ms"`
			ErrorRate      *float64 `json:"error_rate"`
			SpikeRate      *float64 `json:"spike_rate"`
			SpikeLatencyMS *float64 `json:"spike_latency_ms"`
		}
		if err := decodeStrict(r, &in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		s.mu.Lock()
		f := s.faults
		if in.LatencyMS != nil {
			f.Latency = time.Duration(*in.LatencyMS * float64(time.Millisecond))
		}
		if in.ErrorRate != nil {
			f.ErrorRate = *in.ErrorRate
		}
		if in.SpikeRate != nil {
			f.SpikeRate = *in.SpikeRate
		}
		if in.SpikeLatencyMS != nil {
			f.SpikeLatency = time.Duration(*in.SpikeLatencyMS * float64(time.Millisecond))
		}
		s.faults = f
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"latency_ms": f.Latency.Milliseconds(), "error_rate": f.ErrorRate,
			"spike_rate": f.SpikeRate, "spike_latency_ms": f.SpikeLatency.Milliseconds()})
	})
	mux.HandleFunc("POST /_sim/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var in struct {
			State           *string  `json:"state"`
			UsageFloor      *int     `json:"usage_floor"`
			ThrottleMinutes *float64 `json:"throttle_minutes"`
		}
		if err := decodeStrict(r, &in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		var err error
		if in.State != nil {
			st, ok := map[string]TokenState{"valid": TokenValid, "expired": TokenExpired, "invalid": TokenInvalid, "revoked": TokenRevoked}[*in.State]
			if !ok {
				err = fmt.Errorf("state must be valid, expired, invalid or revoked, not %.40q", *in.State)
			} else {
				err = s.SetTokenState(id, st)
			}
		}
		if err == nil && in.UsageFloor != nil {
			err = s.SetUsageFloor(id, *in.UsageFloor)
		}
		if err == nil && in.ThrottleMinutes != nil {
			err = s.Throttle(id, time.Duration(*in.ThrottleMinutes*float64(time.Minute)))
		}
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, errUnknownToken) {
				status = http.StatusNotFound
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		s.writeTokenNoSecret(w, id)
	})
	mux.HandleFunc("POST /_sim/tokens", s.handleMint)
	mux.HandleFunc("POST /_sim/tokens/{id}/deauthorize", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := s.deauthorize(r.Context(), id); err != nil {
			status := http.StatusBadGateway // the token is revoked; the callback failed
			if errors.Is(err, errUnknownToken) {
				status = http.StatusNotFound
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		s.writeTokenNoSecret(w, id)
	})
	return mux
}

// writeTokenNoSecret answers with the token's public description, without
// its value: the caller already has it.
func (s *Sim) writeTokenNoSecret(w http.ResponseWriter, id string) {
	s.mu.Lock()
	t := s.publicToken(s.tokenByID[id], s.now())
	s.mu.Unlock()
	t.Value = ""
	writeJSON(w, http.StatusOK, t)
}

// handleMint: POST /_sim/tokens {"tenant":"brand-02","kind":"user_short",
// "app":"ours","scopes":[...],"expires_in":"90m","data_access_expires_in":"2160h"}
// answers the new Token, value included (see MintToken).
func (s *Sim) handleMint(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Tenant              string   `json:"tenant"`
		Kind                string   `json:"kind"`
		App                 string   `json:"app"`
		Scopes              []string `json:"scopes"`
		ExpiresIn           string   `json:"expires_in"`
		DataAccessExpiresIn string   `json:"data_access_expires_in"`
	}
	bad := func(err error) { writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()}) }
	if err := decodeStrict(r, &in); err != nil {
		bad(err)
		return
	}
	o := MintOptions{Tenant: in.Tenant, Kind: in.Kind, App: in.App, Scopes: in.Scopes}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{{"expires_in", in.ExpiresIn, &o.ExpiresIn}, {"data_access_expires_in", in.DataAccessExpiresIn, &o.DataAccessExpiresIn}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			bad(fmt.Errorf("%s: %.40q is not a duration like \"90m\" or \"-1h\"", d.name, d.v))
			return
		}
		*d.to = v
	}
	t, err := s.MintToken(o)
	if err != nil {
		bad(err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// handleClaims: POST /_sim/claims?n=100&fraud=0.1&malformed=2&tenants=a,b
// [&code_rate=0.3&kinds=ig_comment:0.5,fb_comment:0.5] answers JSON Lines.
func (s *Sim) handleClaims(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bad := func(msg string) { writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg}) }
	num := func(name string, def float64) (float64, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			bad(fmt.Sprintf("%s: not a number: %q", name, v))
			return 0, false
		}
		return f, true
	}
	n, ok := num("n", 100)
	if !ok {
		return
	}
	malformed, ok := num("malformed", 0)
	if !ok {
		return
	}
	var o ClaimOptions
	if o.FraudRate, ok = num("fraud", 0); !ok {
		return
	}
	if q.Has("fraud") && o.FraudRate == 0 {
		o.FraudRate = -1 // an explicit 0 means no fraud
	}
	if o.CodeRate, ok = num("code_rate", 0); !ok {
		return
	}
	if q.Has("code_rate") && o.CodeRate == 0 {
		o.CodeRate = -1
	}
	if t := q.Get("tenants"); t != "" {
		o.Tenants = strings.Split(t, ",")
	}
	if k := q.Get("kinds"); k != "" {
		o.Kinds = map[string]float64{}
		for _, part := range strings.Split(k, ",") {
			name, w, found := strings.Cut(part, ":")
			weight := 1.0
			if found {
				f, err := strconv.ParseFloat(w, 64)
				if err != nil {
					bad(fmt.Sprintf("kinds: bad weight %q", part))
					return
				}
				weight = f
			}
			o.Kinds[name] = weight
		}
	}
	if n < 0 || n > 1_000_000 || malformed < 0 || malformed > 100_000 {
		bad("n must be 0..1000000 and malformed 0..100000")
		return
	}
	claims := s.GenerateClaims(int(n), o)
	bads := s.MalformedLines(int(malformed))
	// Mix the malformed lines in at deterministic positions.
	lines := make([]string, 0, len(claims)+len(bads))
	for _, c := range claims {
		lines = append(lines, string(c.Line))
	}
	for i, b := range bads {
		pos := 0
		if len(lines) > 0 {
			pos = (i*7919 + 13) % (len(lines) + 1)
		}
		lines = append(lines, "")
		copy(lines[pos+1:], lines[pos:])
		lines[pos] = b
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
