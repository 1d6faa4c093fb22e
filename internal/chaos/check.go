package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
)

// submitThroughAPI submits generated claims again through the platform API
// (POST /v1/claims), tenant by tenant with each tenant's key, retrying
// what fails (the worker serving the API may be restarting).
func (w *workload) submitThroughAPI(ctx context.Context, gen []metasim.GeneratedClaim) error {
	byTenant := map[string][]metasim.GeneratedClaim{}
	for _, g := range gen {
		byTenant[g.Tenant] = append(byTenant[g.Tenant], g)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for tenant, claims := range byTenant {
		for from := 0; from < len(claims); from += 1000 {
			part := claims[from:min(from+1000, len(claims))]
			raws := make([]json.RawMessage, len(part))
			for i, g := range part {
				raws[i] = g.Line
			}
			body, _ := json.Marshal(map[string]any{"claims": raws})
			var out struct {
				Results []struct {
					Index  int    `json:"index"`
					Status string `json:"status"`
					ID     int64  `json:"id"`
					Reason string `json:"reason"`
				} `json:"results"`
			}
			var lastErr error
			for attempt := 0; ; attempt++ {
				if attempt > 0 {
					if attempt > 60 || ctx.Err() != nil {
						return fmt.Errorf("POST /v1/claims for %s: %w", tenant, lastErr)
					}
					time.Sleep(500 * time.Millisecond)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+w.sys.apiAddr+"/v1/claims", bytes.NewReader(body))
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer "+w.sys.apiKeys[tenant])
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					lastErr = err
					continue
				}
				data, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					lastErr = fmt.Errorf("%s: %.200s", resp.Status, data)
					continue
				}
				if err := json.Unmarshal(data, &out); err != nil || len(out.Results) != len(part) {
					return fmt.Errorf("POST /v1/claims for %s: %d results for %d claims (%v)", tenant, len(out.Results), len(part), err)
				}
				break
			}
			w.mu.Lock()
			w.submitted += len(part)
			for _, r := range out.Results {
				g := part[r.Index]
				key := g.Tenant + "/" + g.Key
				switch r.Status {
				case "accepted", "duplicate":
					w.record(key, r.ID, r.Status == "accepted")
					if r.Status == "duplicate" {
						w.apiDups++
					}
				default:
					w.dupBad = append(w.dupBad, fmt.Sprintf("%s: the API answered %s %s", key, r.Status, r.Reason))
				}
			}
			w.mu.Unlock()
		}
	}
	return nil
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string  `json:"scenario"`
	About    string  `json:"about"`
	Store    string  `json:"store"`
	Speed    float64 `json:"speed"`

	Claims            int `json:"claims"`             // distinct claims in the workload
	Submissions       int `json:"submissions"`        // submissions made, duplicates included
	DuplicatesRefused int `json:"duplicates_refused"` // second submissions answered "duplicate"
	Decided           int `json:"decided"`
	// Must be 0:
	Lost            int `json:"lost"`             // claims submitted and never decided (or missing from the store)
	Doubled         int `json:"doubled"`          // decisions beyond one per claim, revocations beyond one, second rows or second acceptances of a key
	WronglyRejected int `json:"wrongly_rejected"` // genuine claims rejected or revoked
	Mismatched      int `json:"mismatched"`       // other verdicts against ground truth: a false claim verified, a verifiable kind called unverifiable or the reverse
	LeftLeased      int `json:"left_leased"`      // claims still leased at the end
	Leaks           int `json:"leaks"`            // secrets found in a history or a log

	Provisional int            `json:"provisional"` // approved_by_sample / approved_on_honor, still provisional
	Revoked     int            `json:"revoked"`     // false approvals the audit revoked
	ByVerdict   map[string]int `json:"by_verdict"`  // verdict/method → claims

	// Submit-to-verdict wall time over every decided claim, for scale:
	// a fault's recovery includes the normal time to decide a claim.
	LatencyP50S float64 `json:"latency_p50_s"`
	LatencyP99S float64 `json:"latency_p99_s"`
	LatencyMaxS float64 `json:"latency_max_s"`

	Faults       []FaultResult `json:"faults"`
	MaxRecoveryS float64       `json:"max_recovery_s"`

	WallS  float64 `json:"wall_s"`  // from the first arrival until drained
	DrainS float64 `json:"drain_s"` // from the last arrival and fault until drained
	ScanS  float64 `json:"scan_s"`  // the secrets scan

	GraphCalls     int                  `json:"graph_calls"`
	GraphByOutcome map[string]int       `json:"graph_by_outcome"`
	RefusedCalls   []string             `json:"refused_calls,omitempty"` // per token: throttled or 190 calls, over what wall span
	Webhooks       metasim.WebhookStats `json:"webhooks"`

	Workflows      int      `json:"workflows"`       // workflow runs whose history was exported and scanned
	HistoryBytes   int64    `json:"history_bytes"`   // their JSON, as `temporal workflow show --output json` printed it
	LogFiles       int      `json:"log_files"`       // log files scanned
	LogBytes       int64    `json:"log_bytes"`       //
	SecretsChecked int      `json:"secrets_checked"` // distinct secret values looked for
	LeakDetails    []string `json:"leak_details,omitempty"`

	Problems []string `json:"problems,omitempty"` // every failed check, in words
	OK       bool     `json:"ok"`
}

// finish sets OK from the must-be-0 figures and the problems.
func (r *Result) finish() {
	must := map[string]int{"lost": r.Lost, "doubled": r.Doubled, "wrongly rejected": r.WronglyRejected,
		"mismatched": r.Mismatched, "left leased": r.LeftLeased, "leaked secrets": r.Leaks}
	names := make([]string, 0, len(must))
	for k := range must {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if must[k] != 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d, must be 0", k, must[k]))
		}
	}
	r.OK = len(r.Problems) == 0
}

// check reads every claim and verdict counter from the store and compares
// them with what was submitted and with ground truth.
func check(ctx context.Context, sys *system, wl *workload, res *Result) ([]store.Claim, error) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	res.Claims = len(wl.truth)
	res.Submissions = wl.submitted
	res.DuplicatesRefused = wl.apiDups
	for _, bad := range wl.dupBad {
		res.Doubled++
		res.Problems = append(res.Problems, "submission: "+bad)
	}
	for key, n := range wl.accepted {
		if n > 1 {
			res.Doubled += n - 1
			res.Problems = append(res.Problems, fmt.Sprintf("submission: %s accepted %d times", key, n))
		}
	}

	stats, err := sys.st.Stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	open := 0
	for _, s := range stats {
		res.LeftLeased += s.Leased
		open += s.Pending + s.Leased
	}
	decided, err := sys.st.Decided(ctx, store.ExportFilter{})
	if err != nil {
		return nil, fmt.Errorf("decided claims: %w", err)
	}
	counts, err := sys.st.VerdictCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("verdict counts: %w", err)
	}

	res.ByVerdict = map[string]int{}
	seen := map[string]int{}
	revokedClaims := 0
	var examples []string
	example := func(format string, args ...any) {
		if len(examples) < 20 {
			examples = append(examples, fmt.Sprintf(format, args...))
		}
	}
	for _, c := range decided {
		key := c.Tenant + "/" + c.Key
		seen[key]++
		res.ByVerdict[c.Verdict+"/"+c.Method]++
		if !c.RevokedAt.IsZero() {
			revokedClaims++
		}
		genuine, known := wl.truth[key]
		if !known {
			res.Mismatched++
			example("%s (id %d) decided %s but never submitted", key, c.ID, c.Verdict)
			continue
		}
		verifiable := wl.kinds[key].Verifiable()
		switch c.Verdict {
		case store.VerdictVerified:
			if !verifiable || !genuine {
				res.Mismatched++
				example("%s (id %d, %s, genuine %v) verified by %s: %.200s", key, c.ID, c.Kind, genuine, c.Method, c.Evidence)
			}
		case store.VerdictRejected, store.VerdictRevoked:
			if c.Verdict == store.VerdictRevoked {
				res.Revoked++
			}
			switch {
			case genuine && verifiable:
				res.WronglyRejected++
				example("%s (id %d, %s) genuine but %s by %s: %.300s", key, c.ID, c.Kind, c.Verdict, c.Method, c.Evidence+c.RevokedEvidence)
			case !verifiable:
				res.Mismatched++
				example("%s (id %d, %s) unverifiable kind %s", key, c.ID, c.Kind, c.Verdict)
			}
		case store.VerdictApprovedBySample, store.VerdictApprovedOnHonor:
			res.Provisional++
		case store.VerdictUnverifiable:
			if verifiable {
				res.Mismatched++
				example("%s (id %d, %s) verifiable but called unverifiable", key, c.ID, c.Kind)
			}
		default:
			res.Mismatched++
			example("%s (id %d) has verdict %q", key, c.ID, c.Verdict)
		}
	}
	for key := range wl.truth {
		switch n := seen[key]; {
		case n == 0:
			res.Lost++
			example("%s never decided", key)
		case n > 1:
			res.Doubled += n - 1
			example("%s stored %d times", key, n)
		}
	}
	res.Decided = len(decided)
	if len(decided) > 0 {
		lat := make([]float64, len(decided))
		for i, c := range decided {
			lat[i] = c.DecidedAt.Sub(c.SubmittedAt).Seconds()
		}
		sort.Float64s(lat)
		res.LatencyP50S, res.LatencyP99S, res.LatencyMaxS = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}

	// Every decision is counted once in the store's verdict counters (in
	// the deciding transaction), and every revocation once more under
	// revoked/audit: more decisions counted than decided claims is a claim
	// decided twice.
	decisions, revocations := 0, 0
	for _, vc := range counts {
		if vc.Verdict == store.VerdictRevoked && vc.Method == store.MethodAudit {
			revocations += int(vc.N)
		} else {
			decisions += int(vc.N)
		}
	}
	if decisions > len(decided) {
		res.Doubled += decisions - len(decided)
		example("%d decisions counted for %d decided claims", decisions, len(decided))
	}
	if revocations > revokedClaims {
		res.Doubled += revocations - revokedClaims
		example("%d revocations counted for %d revoked claims", revocations, revokedClaims)
	}
	if decisions < len(decided) || revocations < revokedClaims {
		res.Problems = append(res.Problems, fmt.Sprintf("verdict counters behind the claims: %d decisions and %d revocations counted, %d decided and %d revoked claims",
			decisions, revocations, len(decided), revokedClaims))
	}
	if open > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d claims still open (%d leased)", open, res.LeftLeased))
	}
	res.Problems = append(res.Problems, examples...)
	return decided, nil
}
