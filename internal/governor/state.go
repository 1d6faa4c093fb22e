package governor

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// LoadSample is one load report's counter.
type LoadSample struct {
	At       time.Time
	Received int64
}

// State is the Governor's durable state. Times are workflow (wall)
// times; thresholds and rates are in platform time (wall × Speed).
type State struct {
	Mode         Mode            // operator's platform mode for standard tenants: auto, verify, sample, honor
	AutoMode     Mode            // what auto means now: verify or honor (backlog rule), sample or honor (arrival rule)
	AutoSince    time.Time       // when AutoMode last changed (zero: never)
	Overrides    map[string]Mode // per-tenant, by operators
	Thresholds   LoadThresholds
	Speed        float64
	Samples      []LoadSample
	Arrival      float64 // claims per platform hour, over the rate window
	Open         int
	OpenStandard int `json:",omitempty"`
	QueueWarning bool
	Broken       []TokenAlert // broken tenant tokens, in token id order (a slice: workflow code never ranges over a map)
	Expiring     []TokenAlert `json:",omitempty"` // tenant tokens about to expire, in token id order
	Reports      int64
	Changes      []ModeChange // the latest, oldest first
	Refused      string       `json:",omitempty"` // the last operator input refused, and why
}

// NewState starts from the configured mode and thresholds.
func NewState(in Start) (*State, error) {
	if in.Carried != nil {
		return in.Carried, nil
	}
	th := DefaultLoadThresholds().Merge(in.Thresholds)
	if err := th.Validate(); err != nil {
		return nil, fmt.Errorf("governor thresholds: %w", err)
	}
	mode := in.Mode
	if mode == "" {
		mode = ModeAuto
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	speed := in.Speed
	if speed <= 0 {
		speed = 1
	}
	auto := ModeSample
	if th.HonorOpenAbove > 0 {
		auto = ModeVerify
	}
	return &State{Mode: mode, AutoMode: auto, Thresholds: th, Speed: speed,
		Overrides: map[string]Mode{}}, nil
}

// UseArrivalRule puts a new state on the plan's arrival-rate rule: what
// Governors started before the backlog rule replay with.
func (g *State) UseArrivalRule() {
	g.Thresholds = g.Thresholds.ArrivalRule()
	if g.AutoMode == ModeVerify {
		g.AutoMode = ModeSample
	}
}

// StandardMode is the mode standard tenants run in now.
func (g *State) StandardMode() Mode {
	if g.Mode == ModeAuto || g.Mode == "" {
		return g.AutoMode
	}
	return g.Mode
}

// platform converts a wall duration into platform time.
func (g *State) platform(d time.Duration) time.Duration {
	return time.Duration(float64(d) * g.Speed)
}

// Report takes a load report at now: it updates the arrival rate and the
// queue warning, switches the automatic mode when the thresholds say so,
// and returns each tenant's mode. warn is non-empty when the queue warning
// was raised or cleared by this report.
func (g *State) Report(now time.Time, r LoadReport) (d Directive, warn string) {
	g.Reports++
	g.Open, g.OpenStandard = r.Open, r.OpenStandard
	g.addSample(now, r.Received)

	held := time.Duration(1<<63 - 1)
	if !g.AutoSince.IsZero() {
		held = g.platform(now.Sub(g.AutoSince))
	}
	next, reason := AutoMode(g.AutoMode, g.Arrival, held, g.Thresholds)
	if g.Thresholds.HonorOpenAbove > 0 {
		next, reason = BacklogMode(g.AutoMode, r.OpenStandard, held, g.Thresholds)
	}
	if next != g.AutoMode {
		c := g.record(now, AllTenants, string(g.AutoMode), string(next), "auto", reason)
		g.AutoMode, g.AutoSince = next, now
		if g.Mode == ModeAuto {
			d.Changes = append(d.Changes, c)
		} else {
			g.Changes[len(g.Changes)-1].Reason += fmt.Sprintf(" (auto only: the operator holds the platform at %s)", g.Mode)
			d.Changes = append(d.Changes, g.Changes[len(g.Changes)-1])
		}
	}

	switch {
	case !g.QueueWarning && r.Open > g.Thresholds.QueueWarning:
		g.QueueWarning = true
		warn = fmt.Sprintf("%d claims open, above the warning threshold %d", r.Open, g.Thresholds.QueueWarning)
	case g.QueueWarning && r.Open <= g.Thresholds.QueueClear:
		g.QueueWarning = false
		warn = fmt.Sprintf("queue drained: %d claims open, at or below %d", r.Open, g.Thresholds.QueueClear)
	}

	d.Standard = g.StandardMode()
	for _, t := range r.Tenants {
		d.Tenants = append(d.Tenants, g.modeFor(t))
	}
	return d, warn
}

func (g *State) modeFor(t TenantRef) TenantMode {
	return tenantMode(t, g.Mode, g.StandardMode(), g.Overrides, g.Broken)
}

// ModeFor is the mode the Governor in this state gives a tenant: what its
// next load report would answer for it (claiming reads it ahead of the
// report, to size each tenant's share of a batch).
func (v View) ModeFor(t TenantRef) TenantMode {
	return tenantMode(t, v.Mode, v.StandardMode, v.Overrides, v.BrokenTokens)
}

// ConfiguredMode is the mode a tenant runs in when the Governor cannot be
// asked: premium tenants verify on their own token, standard tenants run in
// the configured mode, auto meaning sample.
func ConfiguredMode(configured Mode, t TenantRef) TenantMode {
	tm := TenantMode{Tenant: t.ID, Mode: configured, Reason: "configured mode (governor unreachable)"}
	switch {
	case t.Tier == TierPremium:
		tm.Mode = ModeVerify
	case configured == "" || configured == ModeAuto:
		tm.Mode = ModeSample
	}
	return tm
}

func tenantMode(t TenantRef, platform, standard Mode, overrides map[string]Mode, broken []TokenAlert) TenantMode {
	tm := TenantMode{Tenant: t.ID, Mode: standard}
	alert, isBroken := brokenToken(broken, t.TokenID)
	ownToken := t.Tier == TierPremium && t.TokenID != "" && !isBroken
	if o, ok := overrides[t.ID]; ok && o != ModeAuto {
		tm.Mode, tm.Reason = o, "operator override"
		tm.PlatformToken = t.Tier == TierPremium && t.TokenID != "" && isBroken
		return tm
	}
	switch {
	case ownToken:
		// Premium tenants verify every claim on their own budget; they are
		// never dropped to sampling or honor by the platform's load.
		tm.Mode, tm.Reason = ModeVerify, "premium: own token"
	case t.Tier == TierPremium && t.TokenID != "":
		tm.PlatformToken = true
		tm.Reason = "premium on the platform token: own token broken since " + alert.Since.UTC().Format(time.RFC3339) + ": " + alert.Reason
	default:
		tm.Reason = "standard: platform mode " + string(platform)
	}
	return tm
}

// addSample keeps the counters within the rate window and recomputes the
// arrival rate over it.
func (g *State) addSample(now time.Time, received int64) {
	if n := len(g.Samples); n > 0 && received < g.Samples[n-1].Received {
		g.Samples = nil // the counter went back (a new store): start over
	}
	g.Samples = append(g.Samples, LoadSample{At: now, Received: received})
	window := time.Duration(float64(defaultRateWindowSim) / g.Speed)
	cut := 0
	for cut < len(g.Samples)-2 && now.Sub(g.Samples[cut+1].At) >= window {
		cut++
	}
	g.Samples = slices.Delete(g.Samples, 0, cut)
	first, last := g.Samples[0], g.Samples[len(g.Samples)-1]
	if dt := g.platform(last.At.Sub(first.At)); dt > 0 {
		g.Arrival = float64(last.Received-first.Received) / dt.Hours()
	}
}

// SetMode applies an operator's set-mode. It returns the change, or an
// error saying why the input was refused.
func (g *State) SetMode(now time.Time, s SetMode) (ModeChange, error) {
	mode, err := ParseMode(string(s.Mode))
	if err != nil {
		g.Refused = "set-mode: " + err.Error()
		return ModeChange{}, err
	}
	reason := s.Reason
	if reason == "" {
		reason = "no reason given"
	}
	if s.Tenant == "" || s.Tenant == AllTenants {
		from := g.Mode
		g.Mode = mode
		return g.record(now, AllTenants, string(from), string(mode), "operator", reason), nil
	}
	from := g.Overrides[s.Tenant]
	if from == "" {
		from = ModeAuto
	}
	if mode == ModeAuto {
		delete(g.Overrides, s.Tenant)
	} else {
		g.Overrides[s.Tenant] = mode
	}
	return g.record(now, s.Tenant, string(from), string(mode), "operator", reason), nil
}

// SetThresholds applies a set-thresholds patch, or refuses it whole.
func (g *State) SetThresholds(p LoadThresholds) (LoadThresholds, error) {
	next := g.Thresholds.Merge(p)
	if err := next.Validate(); err != nil {
		g.Refused = "set-thresholds: " + err.Error()
		return g.Thresholds, err
	}
	g.Thresholds = next
	return next, nil
}

// TokenAlert records a tenant token breaking or recovering; changed is
// false when it says nothing new.
func (g *State) TokenAlert(now time.Time, a TokenAlert) (ModeChange, bool) {
	_, known := g.broken(a.TokenID)
	switch {
	case a.Broken && !known:
		a.Since = now
		g.Broken = append(g.Broken, a)
		slices.SortFunc(g.Broken, func(x, y TokenAlert) int { return strings.Compare(x.TokenID, y.TokenID) })
		return g.record(now, a.Tenant, "own-token", "platform-token", "token", "token "+a.TokenID+" broken: "+a.Reason), true
	case !a.Broken && known:
		g.Broken = slices.DeleteFunc(g.Broken, func(x TokenAlert) bool { return x.TokenID == a.TokenID })
		return g.record(now, a.Tenant, "platform-token", "own-token", "token", "token "+a.TokenID+" works again: "+a.Reason), true
	}
	return ModeChange{}, false
}

// TokenWarning keeps the expiring-token warnings: an alert with State
// "expiring" adds or updates one, any other alert on the token (broken,
// healthy, reconnected) clears it. changed is false when nothing changed.
func (g *State) TokenWarning(a TokenAlert) (changed bool) {
	i := slices.IndexFunc(g.Expiring, func(x TokenAlert) bool { return x.TokenID == a.TokenID })
	switch {
	case a.TokenID == "":
		return false
	case a.State == TokenExpiring && !a.Broken:
		if i >= 0 {
			if g.Expiring[i].Reason == a.Reason && g.Expiring[i].ExpiresAt.Equal(a.ExpiresAt) {
				return false
			}
			g.Expiring[i] = a
			return true
		}
		g.Expiring = append(g.Expiring, a)
		slices.SortFunc(g.Expiring, func(x, y TokenAlert) int { return strings.Compare(x.TokenID, y.TokenID) })
		return true
	case i >= 0:
		g.Expiring = slices.Delete(g.Expiring, i, i+1)
		return true
	}
	return false
}

// BrokenTokens lists the broken tokens, in token id order.
func (g *State) BrokenTokens() []TokenAlert { return slices.Clone(g.Broken) }

func (g *State) broken(tokenID string) (TokenAlert, bool) {
	return brokenToken(g.Broken, tokenID)
}

func brokenToken(broken []TokenAlert, tokenID string) (TokenAlert, bool) {
	if tokenID == "" {
		return TokenAlert{}, false
	}
	i := slices.IndexFunc(broken, func(a TokenAlert) bool { return a.TokenID == tokenID })
	if i < 0 {
		return TokenAlert{}, false
	}
	return broken[i], true
}

func (g *State) record(now time.Time, tenant, from, to, by, reason string) ModeChange {
	c := ModeChange{At: now, Tenant: tenant, From: from, To: to, By: by, Reason: reason, ArrivalPerHour: g.Arrival, Open: g.Open, OpenStandard: g.OpenStandard}
	g.Changes = append(g.Changes, c)
	if len(g.Changes) > maxRecordedChanges {
		g.Changes = slices.Delete(g.Changes, 0, len(g.Changes)-maxRecordedChanges)
	}
	return c
}

// View is the `state` query's answer and the Governor's memo.
type View struct {
	Mode           Mode            // operator's platform mode
	StandardMode   Mode            // what standard tenants run in now
	AutoMode       Mode            // what auto picks from the load
	Overrides      map[string]Mode // per-tenant
	ArrivalPerHour float64         // claims per platform hour
	Open           int             // claims pending or leased
	OpenStandard   int             `json:",omitempty"` // standard tenants' open claims (the backlog rule's input)
	Thresholds     LoadThresholds
	Alerts         []string
	QueueWarning   bool         `json:",omitempty"` // the queue alert is raised (it clears at Thresholds.QueueClear)
	BrokenTokens   []TokenAlert `json:",omitempty"`
	ExpiringTokens []TokenAlert `json:",omitempty"`
	Changes        []ModeChange `json:",omitempty"`
	Reports        int64
	Refused        string `json:",omitempty"`
}

// View is the state as operators read it; alerts are in a stable order.
func (g *State) View() View {
	v := View{
		Mode: g.Mode, StandardMode: g.StandardMode(), AutoMode: g.AutoMode, Overrides: g.Overrides,
		ArrivalPerHour: g.Arrival, Open: g.Open, OpenStandard: g.OpenStandard, Thresholds: g.Thresholds,
		QueueWarning: g.QueueWarning, BrokenTokens: g.BrokenTokens(), ExpiringTokens: slices.Clone(g.Expiring),
		Changes: g.Changes, Reports: g.Reports, Refused: g.Refused,
	}
	if g.QueueWarning {
		v.Alerts = append(v.Alerts, fmt.Sprintf("queue: %d claims open, above %d", g.Open, g.Thresholds.QueueWarning))
	}
	for _, b := range v.BrokenTokens {
		v.Alerts = append(v.Alerts, fmt.Sprintf("tenant %s: own token %s broken since %s (%s); its claims use the platform token",
			b.Tenant, b.TokenID, b.Since.UTC().Format(time.RFC3339), b.Reason))
	}
	for _, e := range v.ExpiringTokens {
		v.Alerts = append(v.Alerts, fmt.Sprintf("tenant %s: own token %s expiring (%s); the tenant must reconnect it", e.Tenant, e.TokenID, e.Reason))
	}
	return v
}
