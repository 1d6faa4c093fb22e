package governor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/governor"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func newGovernor(t *testing.T, speed float64) *governor.State {
	t.Helper()
	g, err := governor.NewState(governor.Start{Speed: speed,
		Thresholds: governor.LoadThresholds{HonorAbove: 3000, HonorBelow: 2000, MinDwell: governor.Duration(10 * time.Minute), QueueWarning: 100}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// feed reports a steady arrival rate (claims per platform hour) once a
// platform minute for the given platform minutes, starting at the counter
// received; it returns the new counter and the time reached.
func feed(g *governor.State, at time.Time, received int64, perHour float64, minutes int, speed float64) (int64, time.Time, []governor.ModeChange) {
	var changes []governor.ModeChange
	step := time.Duration(float64(time.Minute) / speed)
	for range minutes {
		at = at.Add(step)
		received += int64(perHour / 60)
		d, _ := g.Report(at, governor.LoadReport{Received: received})
		changes = append(changes, d.Changes...)
	}
	return received, at, changes
}

func TestGovernorMeasuresArrivalsInPlatformTime(t *testing.T) {
	for _, speed := range []float64{1, 60} {
		g := newGovernor(t, speed)
		_, _, _ = feed(g, t0, 0, 1200, 15, speed)
		if g.Arrival < 1150 || g.Arrival > 1250 {
			t.Errorf("speed %v: arrival %.0f/h, want ~1200/h", speed, g.Arrival)
		}
	}
}

func TestGovernorArrivalRuleSwitchesToHonorAndBackOnceEach(t *testing.T) {
	const speed = 60
	g := newGovernor(t, speed)
	g.UseArrivalRule()
	var all []governor.ModeChange
	n, at := int64(0), t0
	for _, level := range []float64{1000, 2500, 4000, 3500, 2600, 2900, 2100, 2500, 1000, 1500} {
		var ch []governor.ModeChange
		n, at, ch = feed(g, at, n, level, 20, speed)
		all = append(all, ch...)
	}
	if len(all) != 2 || all[0].To != "honor" || all[1].To != "sample" {
		t.Fatalf("changes %+v, want sample→honor then honor→sample", all)
	}
	for _, c := range all {
		if c.By != "auto" || c.Reason == "" || c.ArrivalPerHour == 0 {
			t.Errorf("change without its reason and inputs: %+v", c)
		}
	}
	if g.StandardMode() != governor.ModeSample {
		t.Fatalf("ends in %s", g.StandardMode())
	}
}

// The backlog rule: standard tenants are verified until their open claims
// pass HonorOpenAbove, then approved on honor until they fall to
// HonorOpenBelow. The arrival rate alone (here far above HonorAbove) does
// not switch, and premium tenants' backlog does not count.
func TestGovernorBacklogRuleHonorsOnlyWhileClaimsBackUp(t *testing.T) {
	const speed = 60
	g := newGovernor(t, speed)
	if g.StandardMode() != governor.ModeVerify {
		t.Fatalf("a new Governor starts in %s, want verify", g.StandardMode())
	}
	step := time.Duration(float64(time.Minute) / speed)
	at, received := t0, int64(0)
	var all []governor.ModeChange
	for _, open := range []int{800, 3000, 4900, 5200, 9000, 3000, 1200, 900, 4000} {
		for range 12 { // twelve platform minutes at each level, a report a minute
			at, received = at.Add(step), received+1000 // 60,000/h: far above HonorAbove
			d, _ := g.Report(at, governor.LoadReport{Received: received, Open: open + 40_000, OpenStandard: open})
			all = append(all, d.Changes...)
		}
	}
	if len(all) != 2 || all[0].To != "honor" || all[1].To != "verify" {
		t.Fatalf("changes %+v, want verify→honor then honor→verify", all)
	}
	for _, c := range all {
		if c.By != "auto" || !strings.Contains(c.Reason, "standard claims open") {
			t.Errorf("change without its reason: %+v", c)
		}
	}
	if v := g.View(); v.StandardMode != governor.ModeVerify || v.OpenStandard != 4000 {
		t.Fatalf("ends in %s with %d standard claims open", v.StandardMode, v.OpenStandard)
	}
}

func TestGovernorModeForEachTenant(t *testing.T) {
	g := newGovernor(t, 1)
	if _, err := g.SetMode(t0, governor.SetMode{Mode: "honor", Tenant: "*", Reason: "viral spike"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.SetMode(t0, governor.SetMode{Mode: "verify", Tenant: "brand-03", Reason: "big launch"}); err != nil {
		t.Fatal(err)
	}
	g.TokenAlert(t0, governor.TokenAlert{TokenID: "tok-02", Tenant: "brand-02", Broken: true, Reason: "code 190"})
	d, _ := g.Report(t0, governor.LoadReport{Tenants: []governor.TenantRef{
		{ID: "brand-01", Tier: "premium", TokenID: "tok-01"},
		{ID: "brand-02", Tier: "premium", TokenID: "tok-02"},
		{ID: "brand-03", Tier: "standard"},
		{ID: "brand-04", Tier: "standard"},
	}})
	want := []struct {
		mode     governor.Mode
		platform bool
	}{{"verify", false}, {"honor", true}, {"verify", false}, {"honor", false}}
	for i, w := range want {
		got := d.Tenants[i]
		if got.Mode != w.mode || got.PlatformToken != w.platform || got.Reason == "" {
			t.Errorf("%s: %+v, want mode %s platform token %v", got.Tenant, got, w.mode, w.platform)
		}
	}
	if d.Standard != governor.ModeHonor {
		t.Errorf("standard mode %s", d.Standard)
	}
	if _, err := g.SetMode(t0, governor.SetMode{Mode: "sample", Tenant: "*"}); err != nil {
		t.Fatal(err)
	}
	if g.StandardMode() != governor.ModeSample {
		t.Errorf("standard mode %s after set-mode sample", g.StandardMode())
	}
	if _, err := g.SetMode(t0, governor.SetMode{Mode: "auto", Tenant: "brand-03"}); err != nil || len(g.Overrides) != 0 {
		t.Errorf("auto must clear the override: %v %v", g.Overrides, err)
	}
}

func TestGovernorRefusesBadOperatorInput(t *testing.T) {
	g := newGovernor(t, 1)
	if _, err := g.SetMode(t0, governor.SetMode{Mode: "yolo"}); err == nil || !strings.Contains(g.Refused, "yolo") {
		t.Errorf("bad mode accepted: %v %q", err, g.Refused)
	}
	before := g.Thresholds
	if _, err := g.SetThresholds(governor.LoadThresholds{HonorBelow: 5000}); err == nil || g.Thresholds != before {
		t.Errorf("honor_below above honor_above accepted: %+v", g.Thresholds)
	}
	th, err := g.SetThresholds(governor.LoadThresholds{HonorAbove: 10000})
	if err != nil || th.HonorAbove != 10000 || th.HonorBelow != 8000 || th.QueueWarning != 100 {
		t.Errorf("partial thresholds: %+v %v", th, err)
	}
}

func TestGovernorQueueWarningRaisesAndClears(t *testing.T) {
	g := newGovernor(t, 1)
	steps := []struct {
		open int
		want bool
	}{{50, false}, {101, true}, {90, true}, {81, true}, {80, false}, {100, false}, {150, true}}
	for i, s := range steps {
		_, msg := g.Report(t0.Add(time.Duration(i)*time.Minute), governor.LoadReport{Open: s.open})
		if g.QueueWarning != s.want {
			t.Fatalf("open %d: warning %v, want %v (%q)", s.open, g.QueueWarning, s.want, msg)
		}
		if v := g.View(); s.want != (len(v.Alerts) > 0) {
			t.Fatalf("open %d: alerts %v", s.open, v.Alerts)
		}
	}
}

func TestGovernorTokenAlertAndRecovery(t *testing.T) {
	g := newGovernor(t, 1)
	if _, changed := g.TokenAlert(t0, governor.TokenAlert{TokenID: "tok", Tenant: "b", Broken: true, Reason: "190"}); !changed {
		t.Fatal("first alert must change")
	}
	if _, changed := g.TokenAlert(t0, governor.TokenAlert{TokenID: "tok", Tenant: "b", Broken: true}); changed {
		t.Fatal("a repeated alert is not a change")
	}
	if v := g.View(); len(v.Alerts) != 1 || !strings.Contains(v.Alerts[0], "tok") {
		t.Fatalf("alerts %v", v.Alerts)
	}
	if c, changed := g.TokenAlert(t0, governor.TokenAlert{TokenID: "tok", Tenant: "b"}); !changed || c.To != "own-token" {
		t.Fatalf("recovery: %+v", c)
	}
	if len(g.Broken) != 0 {
		t.Fatal("recovered token still broken")
	}
}

// An expiring token raises a warning that keeps its tenant on its own token
// and clears once the token is healthy again (reconnected) or broken.
func TestGovernorTokenWarning(t *testing.T) {
	g := newGovernor(t, 1)
	expiring := governor.TokenAlert{TokenID: "tok", Tenant: "b", State: governor.TokenExpiring, Reason: "expires in 5 days",
		ExpiresAt: t0.Add(5 * 24 * time.Hour)}
	steps := []struct {
		name          string
		alert         governor.TokenAlert
		warned        bool
		expiring      int
		broken        int
		alertContains string
	}{
		{"expiring", expiring, true, 1, 0, "expiring (expires in 5 days)"},
		{"the same again", expiring, false, 1, 0, "expiring"},
		{"another token: healthy", governor.TokenAlert{TokenID: "other", Tenant: "c", State: "healthy"}, false, 1, 0, "expiring"},
		{"broken", governor.TokenAlert{TokenID: "tok", Tenant: "b", Broken: true, State: "invalid", Reason: "expired"}, true, 0, 1, "broken"},
		{"reconnected, expiring soon again", expiring, true, 1, 0, "expiring"},
		{"reconnected for 60 days", governor.TokenAlert{TokenID: "tok", Tenant: "b", State: "healthy"}, true, 0, 0, ""},
	}
	for _, st := range steps {
		g.TokenAlert(t0, st.alert)
		if warned := g.TokenWarning(st.alert); warned != st.warned {
			t.Errorf("%s: TokenWarning changed = %v, want %v", st.name, warned, st.warned)
		}
		v := g.View()
		if len(v.ExpiringTokens) != st.expiring || len(v.BrokenTokens) != st.broken {
			t.Fatalf("%s: %d expiring, %d broken; want %d, %d", st.name, len(v.ExpiringTokens), len(v.BrokenTokens), st.expiring, st.broken)
		}
		if st.alertContains == "" && len(v.Alerts) != 0 || st.alertContains != "" && (len(v.Alerts) != 1 || !strings.Contains(v.Alerts[0], st.alertContains)) {
			t.Errorf("%s: alerts %q, want one with %q", st.name, v.Alerts, st.alertContains)
		}
		mode := v.ModeFor(governor.TenantRef{ID: "b", Tier: governor.TierPremium, TokenID: "tok"})
		if mode.PlatformToken != (st.broken == 1) {
			t.Errorf("%s: tenant b on the platform token = %v, want %v", st.name, mode.PlatformToken, st.broken == 1)
		}
	}
}

func TestConfiguredMode(t *testing.T) {
	standard, premium := governor.TenantRef{ID: "s", Tier: governor.TierStandard}, governor.TenantRef{ID: "p", Tier: governor.TierPremium, TokenID: "tok-p"}
	tests := []struct {
		configured governor.Mode
		t          governor.TenantRef
		want       governor.Mode
	}{
		{"", standard, governor.ModeSample},
		{governor.ModeAuto, standard, governor.ModeSample},
		{governor.ModeHonor, standard, governor.ModeHonor},
		{governor.ModeVerify, standard, governor.ModeVerify},
		{governor.ModeHonor, premium, governor.ModeVerify},
		{governor.ModeAuto, governor.TenantRef{ID: "unknown"}, governor.ModeSample},
	}
	for _, tt := range tests {
		if got := governor.ConfiguredMode(tt.configured, tt.t); got.Mode != tt.want || got.Tenant != tt.t.ID || got.PlatformToken {
			t.Errorf("ConfiguredMode(%q, %+v) = %+v, want mode %s", tt.configured, tt.t, got, tt.want)
		}
	}
}
