package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

func seededStore(t *testing.T) (store.Store, string) {
	t.Helper()
	st, dsn := testenv.OpenStore(t, testenv.SQLite)
	if err := st.UpsertTenant(context.Background(), store.Tenant{ID: "acme", Tier: store.TierStandard}); err != nil {
		t.Fatal(err)
	}
	return st, dsn
}

func TestSubmitStoresValidLinesAndRefusesTheRest(t *testing.T) {
	st, _ := seededStore(t)
	input := strings.Join([]string{
		`{"tenant":"acme","key":"k1","user":"u1","handle":"maya","kind":"ig_comment","target":"1790"}`,
		`{"tenant":"acme","key":"k2","user":"u2","kind":"ig_follow","target":"1784"}`,
		`{"tenant":"ghost","key":"k3","user":"u3","kind":"ig_follow","target":"1784"}`,
		`{"tenant":"acme","key":"k4","user":"u4","kind":"ig_comment","target":"1790"}`,
		`{"tenant":"acme","key":"k1","user":"u1","handle":"maya","kind":"ig_comment","target":"1790"}`,
	}, "\n")
	sum, err := submitClaims(context.Background(), st, strings.NewReader(input), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Accepted != 2 || sum.Duplicates != 1 || len(sum.Refused) != 2 {
		t.Fatalf("summary = %+v", sum)
	}
	if sum.Refused[0].Line != 3 || !strings.Contains(sum.Refused[0].Reason, `unknown tenant "ghost"`) ||
		sum.Refused[1].Line != 4 || !strings.Contains(sum.Refused[1].Reason, `"handle" is required`) {
		t.Fatalf("refused = %+v", sum.Refused)
	}
}

func TestSubmitCommandExitsNonZeroWhenStrict(t *testing.T) {
	_, dsn := seededStore(t)
	var out, errOut bytes.Buffer
	err := submit(context.Background(), []string{"-store", dsn, "-strict"}, strings.NewReader("not json\n"), &out, &errOut)
	if err != exitError(3) {
		t.Fatalf("err = %v, want exit 3", err)
	}
	if !strings.Contains(errOut.String(), "refused line 1: not a claim object") {
		t.Fatalf("stderr = %q", errOut.String())
	}
	var sum SubmitSummary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || len(sum.Refused) != 1 {
		t.Fatalf("stdout = %q (%v)", out.String(), err)
	}
}

func TestExportAndStatus(t *testing.T) {
	st, dsn := seededStore(t)
	ctx := context.Background()
	_, err := submitClaims(ctx, st, strings.NewReader(strings.Join([]string{
		`{"tenant":"acme","key":"k1","user":"u1","handle":"maya","kind":"ig_comment","target":"1790"}`,
		`{"tenant":"acme","key":"k2","user":"u2","kind":"ig_follow","target":"1784"}`,
		`{"tenant":"acme","key":"k3","user":"u3","kind":"ig_like","target":"1790"}`,
	}, "\n")), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leased, err := st.Claim(ctx, store.ClaimParams{Owner: "test", Limit: 2, TTL: time.Minute, Now: time.Now()})
	if err != nil || len(leased) != 2 {
		t.Fatalf("claim: %v %d", err, len(leased))
	}
	if _, err := st.Decide(ctx, []store.Decision{
		{ClaimID: leased[0].ID, Verdict: store.VerdictVerified, Method: "graph", Evidence: `{"endpoint":"GET /{ig-media-id}/comments"}`},
		{ClaimID: leased[1].ID, Verdict: store.VerdictUnverifiable, Method: "rule", Evidence: "not json"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := export(ctx, []string{"-store", dsn, "-limit", "5"}, &out); err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("exported %d lines, want the 2 decided claims", len(lines))
	}
	for _, field := range []string{"tenant", "key", "kind", "target", "status", "verdict", "method", "evidence", "decided_at"} {
		if _, ok := lines[0][field]; !ok {
			t.Errorf("export lacks %q: %v", field, lines[0])
		}
	}
	if ev, ok := lines[0]["evidence"].(map[string]any); !ok || ev["endpoint"] == nil {
		t.Errorf("JSON evidence not kept as an object: %v", lines[0]["evidence"])
	}
	if lines[1]["evidence"] != "not json" {
		t.Errorf("text evidence = %v", lines[1]["evidence"])
	}

	out.Reset()
	if err := status(ctx, []string{"-store", dsn, "-temporal=false", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var s Status
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Total.Pending != 1 || s.Total.Decided[store.VerdictVerified] != 1 || s.Total.Decided[store.VerdictUnverifiable] != 1 || len(s.Tenants) != 1 {
		t.Fatalf("status = %+v", s)
	}
	out.Reset()
	if err := status(ctx, []string{"-store", dsn, "-temporal=false"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "verified") || !strings.Contains(out.String(), "acme") {
		t.Fatalf("status table:\n%s", out.String())
	}
}

func TestStatusWarnsAboutTheQueue(t *testing.T) {
	over := Status{Total: TenantStatus{Pending: 4500, Leased: 600}}
	if w := warnings(over, 5000); len(w) != 1 || !strings.Contains(w[0], "5100 claims open") {
		t.Fatalf("warnings = %v, want the queue above 5000", w)
	}
	if w := warnings(Status{Total: TenantStatus{Pending: 4000}}, 5000); len(w) != 0 {
		t.Fatalf("warnings below the threshold: %v", w)
	}
	// The Governor's alerts are the source of truth when it answers: its
	// warning clears with hysteresis, and it knows about broken tokens.
	gov := Status{Total: TenantStatus{Pending: 4500, Leased: 600}, Governor: &GovernorStatus{State: &governor.View{Alerts: []string{"tenant brand-02: own token broken"}}}}
	if w := warnings(gov, 5000); len(w) != 1 || !strings.Contains(w[0], "brand-02") {
		t.Fatalf("warnings = %v, want the Governor's", w)
	}
	var out bytes.Buffer
	printStatus(&out, over)
	if !strings.Contains(out.String(), "audited") {
		t.Fatalf("status table lacks the audited column:\n%s", out.String())
	}
	over.Warnings = warnings(over, 5000)
	out.Reset()
	printStatus(&out, over)
	if !strings.Contains(out.String(), "WARNING queue: 5100 claims open") {
		t.Fatalf("status does not print the warning:\n%s", out.String())
	}
}

// `starter api-key` prints a new key once; the store knows its tenant by it,
// and the database file holds no trace of the key itself.
func TestAPIKeyCommand(t *testing.T) {
	st, dsn := seededStore(t)
	ctx := context.Background()
	tenants, err := st.Tenants(ctx)
	if err != nil || len(tenants) == 0 {
		t.Fatalf("tenants: %v, %v", tenants, err)
	}
	tenant := tenants[0].ID
	var out bytes.Buffer
	if err := apiKey(ctx, []string{"-store", dsn, "-tenant", tenant, "-name", "backend"}, &out); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(out.String())
	if len(key) < store.MinAPIKeyLength {
		t.Fatalf("key %q is too short", key)
	}
	if got, err := st.APIKeyTenant(ctx, key); err != nil || got != tenant {
		t.Fatalf("APIKeyTenant = %q, %v; want %s", got, err, tenant)
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for _, file := range []string{path, path + "-wal"} {
		raw, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(key)) {
			t.Fatalf("the API key is stored in clear in %s", file)
		}
	}
	if err := apiKey(ctx, []string{"-store", dsn, "-tenant", "no-such-tenant"}, &out); err == nil {
		t.Error("a key was made for an unknown tenant")
	}
}
