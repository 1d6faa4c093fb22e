package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
	"github.com/socialproof/verifier/workflows"
)

// Status is what `starter status -json` prints.
type Status struct {
	Tenants  []TenantStatus  `json:"tenants"`
	Total    TenantStatus    `json:"total"`
	Schedule *ScheduleStatus `json:"schedule,omitempty"`
	Limiters []LimiterStatus `json:"limiters,omitempty"`
	Governor *GovernorStatus `json:"governor,omitempty"`
	Audit    *AuditStatus    `json:"audit,omitempty"`
	// Tokens: each token's health as last recorded (starter tokens has more).
	Tokens []TokenLine `json:"tokens,omitempty"`
	// Warnings: the queue above its threshold, broken or expiring tokens.
	Warnings []string `json:"warnings,omitempty"`
}

// GovernorStatus is the Governor's `state` query answer.
type GovernorStatus struct {
	State *governor.View `json:"state,omitempty"`
	Error string         `json:"error,omitempty"`
}

// AuditStatus counts the audit of provisional approvals: from the store
// (coverage) and from the audit workflow's `state` query (work done).
type AuditStatus struct {
	Provisional int                   `json:"provisional"` // approved by sample or on honor, still standing
	Audited     int                   `json:"audited"`     // provisional or revoked claims an audit has checked
	Revoked     int                   `json:"revoked"`
	Coverage    float64               `json:"coverage"` // audited / (provisional + revoked)
	State       *workflows.AuditState `json:"state,omitempty"`
	Error       string                `json:"error,omitempty"`
}

// LimiterStatus is one token's limiter, as its `state` query answers.
type LimiterStatus struct {
	Token string         `json:"token"`
	State *limiter.State `json:"state,omitempty"`
	Error string         `json:"error,omitempty"` // e.g. not started yet
}

// TenantStatus counts one tenant's claims.
type TenantStatus struct {
	Tenant  string         `json:"tenant"`
	Pending int            `json:"pending"`
	Leased  int            `json:"leased"`
	Decided map[string]int `json:"decided"`
	Audited int            `json:"audited"`
	// Quarantined: poison claims (their check panicked), out of the queue
	// until released (`starter quarantine`).
	Quarantined int `json:"quarantined"`
}

// ScheduleStatus is the Dispatcher schedule as Temporal describes it.
type ScheduleStatus struct {
	ID        string      `json:"id"`
	Paused    bool        `json:"paused"`
	Actions   int         `json:"actions"`
	NextRuns  []time.Time `json:"next_runs"`
	LastRunAt *time.Time  `json:"last_run_at,omitempty"`
	Error     string      `json:"error,omitempty"`
}

func status(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("status")
	asJSON := c.fs.Bool("json", false, "print JSON")
	withTemporal := c.fs.Bool("temporal", true, "also describe the schedule in Temporal")
	if err := c.parse(args); err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.Stats(ctx)
	if err != nil {
		return err
	}
	s := Status{Total: TenantStatus{Tenant: "total", Decided: map[string]int{}}}
	for _, t := range stats {
		ts := TenantStatus{Tenant: t.Tenant, Pending: t.Pending, Leased: t.Leased, Decided: t.Decided, Audited: t.Audited, Quarantined: t.Quarantined}
		if ts.Decided == nil {
			ts.Decided = map[string]int{}
		}
		s.Tenants = append(s.Tenants, ts)
		s.Total.Pending += t.Pending
		s.Total.Leased += t.Leased
		s.Total.Audited += t.Audited
		s.Total.Quarantined += t.Quarantined
		for v, n := range t.Decided {
			s.Total.Decided[v] += n
		}
	}
	tokens, err := st.Tokens(ctx)
	if err != nil {
		return err
	}
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return err
	}
	owners := store.TokenTenants(tokens, tenants)
	for _, t := range tokens {
		if t.ID != store.AppTokenID {
			s.Tokens = append(s.Tokens, tokenLine(t, owners[t.ID]))
		}
	}
	if *withTemporal {
		s.Schedule = describeSchedule(ctx, c)
		s.Limiters = describeLimiters(ctx, c, tokens)
		s.Governor = describeGovernor(ctx, c)
	}
	s.Audit = auditStatus(s.Total)
	if *withTemporal {
		s.Audit.State, s.Audit.Error = describeAudit(ctx, c)
	}
	s.Warnings = warnings(s, c.cfg.QueueWarning)
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	printStatus(out, s)
	return nil
}

func describeSchedule(ctx context.Context, c *command) *ScheduleStatus {
	ss := &ScheduleStatus{ID: workflows.ScheduleID}
	tc, err := c.temporal()
	if err != nil {
		ss.Error = err.Error()
		return ss
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := tc.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Describe(ctx)
	if err != nil {
		ss.Error = err.Error()
		return ss
	}
	ss.Paused = d.Schedule.State.Paused
	ss.Actions = d.Info.NumActions
	ss.NextRuns = d.Info.NextActionTimes
	if n := len(d.Info.RecentActions); n > 0 {
		t := d.Info.RecentActions[n-1].ActualTime
		ss.LastRunAt = &t
	}
	return ss
}

func describeLimiters(ctx context.Context, c *command, tokens []store.Token) []LimiterStatus {
	if len(tokens) == 0 {
		return nil
	}
	tc, err := c.temporal()
	if err != nil {
		return []LimiterStatus{{Error: err.Error()}}
	}
	defer tc.Close()
	out := make([]LimiterStatus, 0, len(tokens))
	for _, tok := range tokens {
		ls := LimiterStatus{Token: tok.ID}
		var state limiter.State
		err := queryWorkflow(ctx, tc, limiter.WorkflowID(tok.ID), limiter.QueryState, &state)
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			ls.Error = "not started (starts on the first reservation)"
		case err != nil:
			ls.Error = err.Error()
		default:
			ls.State = &state
		}
		out = append(out, ls)
	}
	return out
}

func describeGovernor(ctx context.Context, c *command) *GovernorStatus {
	var view governor.View
	if err := queryLongRunning(ctx, c, governor.WorkflowID, governor.QueryState, &view); err != nil {
		return &GovernorStatus{Error: err.Error()}
	}
	return &GovernorStatus{State: &view}
}

func describeAudit(ctx context.Context, c *command) (*workflows.AuditState, string) {
	var st workflows.AuditState
	if err := queryLongRunning(ctx, c, workflows.AuditWorkflowID, workflows.QueryAuditState, &st); err != nil {
		return nil, err.Error()
	}
	return &st, ""
}

// queryLongRunning answers a query of a workflow `starter setup` starts, or
// says why not.
func queryLongRunning(ctx context.Context, c *command, id, query string, into any) error {
	tc, err := c.temporal()
	if err != nil {
		return err
	}
	defer tc.Close()
	err = queryWorkflow(ctx, tc, id, query, into)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s not running (run `starter setup`)", id)
	}
	return err
}

// queryWorkflow answers a workflow's query within a few seconds.
func queryWorkflow(ctx context.Context, tc client.Client, id, query string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := tc.QueryWorkflow(ctx, id, "", query)
	if err != nil {
		return err
	}
	return v.Get(into)
}

func auditStatus(total TenantStatus) *AuditStatus {
	a := &AuditStatus{
		Provisional: total.Decided[store.VerdictApprovedBySample] + total.Decided[store.VerdictApprovedOnHonor],
		Audited:     total.Audited,
		Revoked:     total.Decided[store.VerdictRevoked],
	}
	if n := a.Provisional + a.Revoked; n > 0 {
		a.Coverage = float64(a.Audited) / float64(n)
	}
	return a
}

// warnings are the Governor's alerts; without a Governor, the queue is
// checked against the configured threshold here. Quarantined claims are
// always worth a line: they wait for an operator.
func warnings(s Status, queueWarning int) []string {
	var w []string
	if g := s.Governor; g != nil && g.State != nil {
		w = append(w, g.State.Alerts...)
	} else if open := s.Total.Pending + s.Total.Leased; queueWarning > 0 && open > queueWarning {
		w = append(w, fmt.Sprintf("queue: %d claims open, above %d", open, queueWarning))
	}
	// Tokens the store knows to be in trouble, unless the Governor's
	// alerts already name them.
	for _, t := range s.Tokens {
		switch store.TokenState(t.State) {
		case store.TokenExpiring, store.TokenInvalid, store.TokenRevoked, store.TokenMissingScopes:
		default:
			continue
		}
		named := false
		for _, line := range w {
			named = named || strings.Contains(line, " "+t.ID+" ")
		}
		if !named {
			w = append(w, fmt.Sprintf("token %s (tenant %s): %s: %s", t.ID, dash(t.Tenant), t.State, t.Reason))
		}
	}
	if n := s.Total.Quarantined; n > 0 {
		w = append(w, fmt.Sprintf("quarantine: %d poison claims (their check panicked) wait for an operator: `starter quarantine` lists them, -release puts them back", n))
	}
	return w
}

// verdictColumns are printed in this order; any other verdict follows.
var verdictColumns = []string{
	store.VerdictVerified, store.VerdictRejected, store.VerdictUnverifiable,
	store.VerdictApprovedBySample, store.VerdictApprovedOnHonor, store.VerdictRevoked,
}

func printStatus(out io.Writer, s Status) {
	cols := slices.Clone(verdictColumns)
	for v := range s.Total.Decided {
		if !slices.Contains(cols, v) {
			cols = append(cols, v)
		}
	}
	slices.Sort(cols[len(verdictColumns):])
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "tenant\tpending\tleased\tquarantined\t%s\taudited\t\n", strings.Join(cols, "\t"))
	row := func(t TenantStatus) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d", t.Tenant, t.Pending, t.Leased, t.Quarantined)
		for _, v := range cols {
			fmt.Fprintf(tw, "\t%d", t.Decided[v])
		}
		fmt.Fprintf(tw, "\t%d\t\n", t.Audited)
	}
	for _, t := range s.Tenants {
		row(t)
	}
	row(s.Total)
	_ = tw.Flush()
	if ss := s.Schedule; ss != nil {
		switch {
		case ss.Error != "":
			fmt.Fprintf(out, "\nschedule %s: %s\n", ss.ID, ss.Error)
		default:
			next := "-"
			if len(ss.NextRuns) > 0 {
				next = ss.NextRuns[0].Local().Format(time.TimeOnly)
			}
			fmt.Fprintf(out, "\nschedule %s: %d runs, paused=%v, next at %s\n", ss.ID, ss.Actions, ss.Paused, next)
		}
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(out, "\nWARNING %s\n", w)
	}
	if g := s.Governor; g != nil {
		if g.Error != "" {
			fmt.Fprintf(out, "\ngovernor: %s\n", g.Error)
		} else {
			v := g.State
			rule := fmt.Sprintf("arrivals %.0f/h (honor above %d, back below %d)", v.ArrivalPerHour, v.Thresholds.HonorAbove, v.Thresholds.HonorBelow)
			if v.Thresholds.HonorOpenAbove > 0 {
				rule = fmt.Sprintf("%d standard claims open (honor above %d, back at %d); arrivals %.0f/h",
					v.OpenStandard, v.Thresholds.HonorOpenAbove, v.Thresholds.HonorOpenBelow, v.ArrivalPerHour)
			}
			fmt.Fprintf(out, "\ngovernor: platform mode %s, standard tenants now %s; %s; %d open (warning above %d)\n",
				v.Mode, v.StandardMode, rule, v.Open, v.Thresholds.QueueWarning)
			for _, tenant := range slices.Sorted(maps.Keys(v.Overrides)) {
				fmt.Fprintf(out, "  override %s: %s\n", tenant, v.Overrides[tenant])
			}
			if n := len(v.Changes); n > 0 {
				last := v.Changes[n-1]
				fmt.Fprintf(out, "  last change %s: %s %s → %s by %s: %s\n", last.At.Local().Format(time.TimeOnly), last.Tenant, last.From, last.To, last.By, last.Reason)
			}
		}
	}
	if a := s.Audit; a != nil {
		fmt.Fprintf(out, "\naudit: %d provisional approvals standing, %d revoked; %d audited (coverage %.0f%%)", a.Provisional, a.Revoked, a.Audited, 100*a.Coverage)
		switch {
		case a.State != nil:
			fmt.Fprintf(out, "; audit workflow: %d confirmed, %d revoked, %d calls\n", a.State.Confirmed, a.State.Revoked, a.State.Calls)
		case a.Error != "":
			fmt.Fprintf(out, "; audit workflow: %s\n", a.Error)
		default:
			fmt.Fprintln(out)
		}
	}
	if len(s.Limiters) > 0 {
		fmt.Fprintln(out, "\nlimiters:")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  token\tbudget\tused in window\tqueued\tcapacity\tnext free\tstate\t")
		for _, l := range s.Limiters {
			if l.State == nil {
				fmt.Fprintf(tw, "  %s\t\t\t\t\t\t%s\t\n", l.Token, l.Error)
				continue
			}
			st := l.State
			state := "running"
			switch {
			case st.Paused:
				state = "paused"
			case st.BlockedUntil.After(time.Now()):
				state = "throttled until " + st.BlockedUntil.Local().Format(time.TimeOnly)
			}
			capacity := max(st.CapacityPercent, 0)
			if capacity == 0 {
				capacity = 100
			}
			fmt.Fprintf(tw, "  %s\t%d/%s\t%d\t%d\t%d%%\t%s\t%s\t\n", l.Token, st.Budget.Calls, st.Budget.Window,
				st.UsedInWindow, st.QueuedVerify+st.QueuedAudit, capacity, st.NextFree.Local().Format(time.TimeOnly), state)
		}
		_ = tw.Flush()
	}
}
