package store_test

// User risk: FlagUsers and RiskyUsers.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

func TestFlagUsersKeepsLaterUntil(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		// Each step flags, then checks the flag's Until (risky just before
		// it, not at it) and reason.
		steps := []struct {
			name       string
			flags      []store.UserFlag
			user       string
			until      time.Time
			wantReason string
		}{
			{"first flag", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(2), Reason: "a"}}, "u1", h(2), "a"},
			{"shorter flag ignored", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(1), Reason: "b"}}, "u1", h(2), "a"},
			{"equal flag ignored", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(2), Reason: "c"}}, "u1", h(2), "a"},
			{"longer flag wins", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(3), Reason: "d"}}, "u1", h(3), "d"},
			{"repeated within a call", []store.UserFlag{
				{Tenant: "acme", User: "u2", Until: h(1), Reason: "x"},
				{Tenant: "acme", User: "u2", Until: h(5), Reason: "y"},
				{Tenant: "acme", User: "u2", Until: h(2), Reason: "z"},
			}, "u2", h(5), "y"},
			{"repeated within a call, stored one longer", []store.UserFlag{
				{Tenant: "acme", User: "u1", Until: h(1), Reason: "p"},
				{Tenant: "acme", User: "u1", Until: h(2), Reason: "q"},
			}, "u1", h(3), "d"},
		}
		for _, st := range steps {
			if err := s.FlagUsers(ctx, st.flags); err != nil {
				t.Fatalf("%s: FlagUsers: %v", st.name, err)
			}
			if got := riskyUsers(t, s, "acme", []string{st.user}, st.until.Add(-time.Microsecond)); !slices.Equal(got, []string{st.user}) {
				t.Errorf("%s: just before %v: risky %v, want [%s]", st.name, st.until, got, st.user)
			}
			if got := riskyUsers(t, s, "acme", []string{st.user}, st.until); len(got) != 0 {
				t.Errorf("%s: at %v: risky %v, want none", st.name, st.until, got)
			}
			if got := flagReason(t, b, dsn, "acme", st.user); got != st.wantReason {
				t.Errorf("%s: reason %q, want %q", st.name, got, st.wantReason)
			}
		}

		for _, bad := range []store.UserFlag{
			{User: "u", Until: h(1)},
			{Tenant: "acme", Until: h(1)},
			{Tenant: "acme", User: "u"},
		} {
			if err := s.FlagUsers(ctx, []store.UserFlag{bad}); err == nil {
				t.Errorf("FlagUsers(%+v) succeeded", bad)
			}
		}
		if err := s.FlagUsers(ctx, nil); err != nil {
			t.Errorf("FlagUsers(nil): %v", err)
		}
	})
}

func TestRiskyUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		flags := []store.UserFlag{
			{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)},
			{Tenant: "acme", User: "u2", Until: t0.Add(-time.Minute)}, // expired
			{Tenant: "acme", User: "u3", Until: t0},                   // expires now: not after now
			{Tenant: "acme", User: "u9", Until: t0.Add(time.Hour)},
			{Tenant: "acme", User: "u5", Until: t0.Add(time.Hour)},
			{Tenant: "other", User: "u4", Until: t0.Add(time.Hour)},
		}
		if err := s.FlagUsers(ctx, flags); err != nil {
			t.Fatalf("FlagUsers: %v", err)
		}
		tests := []struct {
			name   string
			tenant string
			users  []string
			want   []string
		}{
			{"expired, other tenant's, unknown excluded", "acme", []string{"u4", "u1", "u2", "u3", "unknown", "u1"}, []string{"u1"}},
			{"sorted, without duplicates", "acme", []string{"u9", "u5", "u9", "u1", "u5"}, []string{"u1", "u5", "u9"}},
			{"other tenant", "other", []string{"u4", "u1"}, []string{"u4"}},
			{"unknown tenant", "nobody", []string{"u1", "u4"}, nil},
			{"no users", "acme", nil, nil},
		}
		for _, tt := range tests {
			if got := riskyUsers(t, s, tt.tenant, tt.users, t0); !slices.Equal(got, tt.want) {
				t.Errorf("%s: RiskyUsers(%s, %v) = %v, want %v", tt.name, tt.tenant, tt.users, got, tt.want)
			}
		}
		if _, err := s.RiskyUsers(ctx, "acme", []string{"u1"}, time.Time{}); err == nil {
			t.Error("RiskyUsers with a zero now succeeded")
		}

		// Thousands of users in one call, past any one IN list: 3,000 flagged
		// (every other one expired), asked for in reverse with 500 unknown
		// users and every user twice.
		const n = 3000
		var bulk []store.UserFlag
		var asked, want []string
		for i := range n {
			user := fmt.Sprintf("bulk-%05d", i)
			until := t0.Add(time.Hour)
			if i%2 == 1 {
				until = t0.Add(-time.Hour)
			} else {
				want = append(want, user)
			}
			bulk = append(bulk, store.UserFlag{Tenant: "bulk", User: user, Until: until})
			asked = append(asked, user, user)
		}
		for i := range 500 {
			asked = append(asked, fmt.Sprintf("bulk-unknown-%03d", i))
		}
		slices.Reverse(asked)
		if err := s.FlagUsers(ctx, bulk); err != nil {
			t.Fatalf("FlagUsers(%d flags): %v", n, err)
		}
		if got := riskyUsers(t, s, "bulk", asked, t0); !slices.Equal(got, want) {
			t.Errorf("RiskyUsers(%d users): %d risky, want %d", len(asked), len(got), len(want))
		}
	})
}
