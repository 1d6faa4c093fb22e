package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// `starter quarantine` lists the poison claims (id, tenant, key, when, why),
// by tenant too; `status` counts them and warns; -release puts claims back
// to pending, by id or all of a tenant's.
func TestQuarantineCommand(t *testing.T) {
	st, dsn := seededStore(t)
	ctx := context.Background()
	if err := st.UpsertTenant(ctx, store.Tenant{ID: "zeta", Tier: store.TierStandard}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i, tenant := range []string{"acme", "acme", "acme", "zeta"} {
		lines = append(lines, fmt.Sprintf(`{"tenant":%q,"key":"k%d","user":"u%d","handle":"maya","kind":"ig_comment","target":"1790"}`, tenant, i, i))
	}
	if _, err := submitClaims(ctx, st, strings.NewReader(strings.Join(lines, "\n")), time.Now()); err != nil {
		t.Fatal(err)
	}
	leased, err := st.Claim(ctx, store.ClaimParams{Owner: "batch", Limit: 10, TTL: time.Hour, Now: time.Now()})
	if err != nil || len(leased) != 4 {
		t.Fatalf("claim: %d, %v", len(leased), err)
	}
	reason := "panic: runtime error: index out of range [3] with length 3 (at evidence.Find match.go:42)"
	var items []store.Quarantine
	for _, c := range leased {
		if c.Key != "k2" {
			items = append(items, store.Quarantine{ClaimID: c.ID, Reason: reason})
		}
	}
	if n, err := st.Quarantine(ctx, "batch", items, time.Now()); err != nil || n != 3 {
		t.Fatalf("quarantine: %d, %v", n, err)
	}

	var out bytes.Buffer
	if err := quarantine(ctx, []string{"-store", dsn}, &out); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"id", "tenant", "key", "reason", "k0", "k1", "k3", "zeta", "index out of range", "3 quarantined"} {
		if !strings.Contains(table, want) {
			t.Errorf("listing lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "k2") {
		t.Errorf("listing shows the leased claim k2:\n%s", table)
	}

	out.Reset()
	if err := quarantine(ctx, []string{"-store", dsn, "-tenant", "acme", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var listed []QuarantinedClaim
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var q QuarantinedClaim
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		listed = append(listed, q)
	}
	if len(listed) != 2 || listed[0].Key != "k0" || listed[1].Key != "k1" || listed[0].Reason != reason || listed[0].QuarantinedAt.IsZero() || listed[0].Tenant != "acme" {
		t.Fatalf("acme's quarantined claims: %+v", listed)
	}

	out.Reset()
	if err := status(ctx, []string{"-store", dsn, "-temporal=false", "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var s Status
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Total.Quarantined != 3 || s.Total.Leased != 1 || len(s.Tenants) != 2 || s.Tenants[0].Quarantined != 2 || s.Tenants[1].Quarantined != 1 {
		t.Fatalf("status = %+v", s)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "3 poison claims") {
		t.Errorf("status warnings = %v, want the quarantine", s.Warnings)
	}
	out.Reset()
	if err := status(ctx, []string{"-store", dsn, "-temporal=false"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "quarantined") || !strings.Contains(out.String(), "WARNING quarantine: 3 poison claims") {
		t.Errorf("status table lacks the quarantine:\n%s", out.String())
	}

	// Release one by id, then the rest of acme's, then zeta's.
	out.Reset()
	if err := quarantine(ctx, []string{"-store", dsn, "-release", fmt.Sprint(listed[0].ID)}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "released 1 of 1") {
		t.Errorf("release output %q", out.String())
	}
	out.Reset()
	if err := quarantine(ctx, []string{"-store", dsn, "-tenant", "acme", "-release", "all"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "released 1 of 1") {
		t.Errorf("release all of acme: %q", out.String())
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats[0].Tenant != "acme" || stats[0].Quarantined != 0 || stats[0].Pending != 2 || stats[1].Quarantined != 1 {
		t.Fatalf("stats after releasing acme's: %+v", stats)
	}
	if err := quarantine(ctx, []string{"-store", dsn, "-release", "12,x"}, &out); err == nil || !strings.Contains(err.Error(), `"x" is not a claim id`) {
		t.Errorf("-release with a bad id: %v", err)
	}
	out.Reset()
	if err := quarantine(ctx, []string{"-store", dsn, "-release", "all"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := quarantine(ctx, []string{"-store", dsn}, &out); err != nil || !strings.Contains(out.String(), "no quarantined claims") {
		t.Errorf("listing after releasing all: %q, %v", out.String(), err)
	}
}
