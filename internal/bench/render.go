package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// measure is one row of a scenario table. The terminal table and the
// Markdown table share this list so the two reports cannot drift apart.
type measure struct {
	label string
	value func(EngineResult) string
}

var measures = []measure{
	{"claims decided", func(e EngineResult) string { return ratio(e.Decided, e.Claims) }},
	{"decided per hour (wall clock)", func(e EngineResult) string {
		return thousands(int64(math.Round(e.DecidedPerHourWall))) + "/h"
	}},
	{"verifiable with real evidence", func(e EngineResult) string {
		return percent(e.RealEvidenceShare) + " (" + ratio(e.RealEvidence, e.Verifiable) + ")"
	}},
	{"fraudulent approved", func(e EngineResult) string {
		return ratio(e.FraudApproved, e.Fraudulent) + " (" + percent(e.FraudApprovedShare) + ")"
	}},
	{"genuine rejected", func(e EngineResult) string {
		return ratio(e.GenuineRejected, e.Genuine) + " (" + percent(e.GenuineRejectedShare) + ")"
	}},
	{"Graph calls", func(e EngineResult) string { return thousands(int64(e.Calls)) }},
	{"throttle errors", func(e EngineResult) string { return thousands(int64(e.Throttles)) }},
	{"budget utilization", func(e EngineResult) string { return percent(e.BudgetUtilization) }},
	{"history events per decided claim", func(e EngineResult) string {
		// An engine without Temporal has no history; "0.00" would read as
		// "free", which is not the comparison the row is about.
		if e.HistoryEvents == 0 {
			return "n/a"
		}
		return strconv.FormatFloat(e.EventsPerDecided, 'f', 2, 64)
	}},
	{"p50 submit-to-verdict (simulated)", func(e EngineResult) string { return duration(e.LatencyP50) }},
	{"p95 submit-to-verdict (simulated)", func(e EngineResult) string { return duration(e.LatencyP95) }},
	{"peak pending", func(e EngineResult) string { return thousands(int64(e.PeakPending)) }},
	{"webhooks delivered (of events)", func(e EngineResult) string {
		if e.WebhookEvents == 0 {
			return "n/a" // not subscribed
		}
		return ratio(e.WebhooksDelivered, e.WebhookEvents)
	}},
	{"peak heap (engine and metasim in one process)", func(e EngineResult) string { return megabytes(e.PeakWorkerMemMB) }},
}

// PrintTable writes r as plain-text tables, one per scenario with one column
// per engine, followed by the scenario's targets and the cost-growth series.
func PrintTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := &printer{w: tw}
	for i, s := range r.Scenarios {
		if i > 0 {
			p.printf("\n")
		}
		p.printf("== %s: %s\n", s.Name, s.About)
		p.printf("claims %s, seed %d, speed %s\n\n", thousands(int64(s.Claims)), s.Seed, speed(s.Speed))
		p.printf("measure")
		for _, e := range s.Engines {
			p.printf("\t%s", e.Engine)
		}
		p.printf("\n")
		for _, m := range measures {
			p.printf("%s", m.label)
			for _, e := range s.Engines {
				p.printf("\t%s", m.value(e))
			}
			p.printf("\n")
		}
		// Verdict breakdowns are too wide for a column: one line each.
		p.printf("\nverdicts (verdict/method):\n")
		for _, e := range s.Engines {
			p.printf("  %s: %s\n", e.Engine, verdicts(e.ByVerdict))
		}
		p.printf("misjudged (by kind):\n")
		for _, e := range s.Engines {
			p.printf("  %s: %s\n", e.Engine, verdicts(e.Misjudged))
		}
		if len(s.Targets) > 0 {
			// The tab-free line ends the table's column block, so the
			// targets align among themselves rather than with the table.
			p.printf("\ntargets:\n")
			for _, t := range s.Targets {
				status := "MISSED"
				if t.Met {
					status = "met"
				}
				p.printf("  %s\t%s\t%s\n", status, t.What, t.Measured)
			}
		}
	}
	if len(r.Growth) > 0 {
		p.printf("\n== cost growth (claims/s: the first 90%% decided, over the wall time they took)\n\nengine\tclaims\tclaims/s\tpeak heap\n")
		for _, g := range r.Growth {
			p.printf("%s\t%s\t%s\t%s\n", g.Engine, thousands(int64(g.Claims)),
				strconv.FormatFloat(g.ClaimsPerSecond, 'f', 1, 64), megabytes(g.PeakWorkerMemMB))
		}
	}
	if p.err != nil {
		return fmt.Errorf("print report table: %w", p.err)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print report table: %w", err)
	}
	return nil
}

// WriteMarkdown writes r as GitHub Markdown: a title, the run's context, one
// table per scenario with one column per engine, its targets and a link to
// its chart (as written by WriteAll), then the cost-growth table.
func WriteMarkdown(w io.Writer, r Report) error {
	p := &printer{w: w}
	p.printf("# Benchmark report\n\n")
	p.printf("Machine: %s · store: %s · started: %s\n", mdEscape(r.Machine), mdEscape(r.Store),
		r.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
	for _, s := range r.Scenarios {
		p.printf("\n## %s\n\n%s\n\nClaims %s, seed %d, speed %s.\n\n", s.Name, s.About,
			thousands(int64(s.Claims)), s.Seed, speed(s.Speed))
		p.printf("| measure |")
		for _, e := range s.Engines {
			p.printf(" %s |", mdEscape(e.Engine))
		}
		p.printf("\n|---|%s\n", strings.Repeat("--:|", len(s.Engines)))
		for _, m := range measures {
			p.printf("| %s |", m.label)
			for _, e := range s.Engines {
				p.printf(" %s |", mdEscape(m.value(e)))
			}
			p.printf("\n")
		}
		p.printf("\nVerdicts (verdict/method):\n\n")
		for _, e := range s.Engines {
			p.printf("- %s: %s\n", mdEscape(e.Engine), verdicts(e.ByVerdict))
		}
		p.printf("\nMisjudged (by kind):\n\n")
		for _, e := range s.Engines {
			p.printf("- %s: %s\n", mdEscape(e.Engine), verdicts(e.Misjudged))
		}
		if len(s.Targets) > 0 {
			p.printf("\nTargets:\n\n")
			for _, t := range s.Targets {
				status := "❌ missed"
				if t.Met {
					status = "✅ met"
				}
				p.printf("- %s: %s — measured %s\n", status, t.What, t.Measured)
			}
		}
		// The link points at the sanitized file name WriteAll uses, so it
		// is never broken even when the scenario name has odd characters.
		p.printf("\n![%s](%s)\n", s.Name, chartFileName(s.Name))
	}
	if len(r.Growth) > 0 {
		p.printf("\n## Cost growth\n\nClaims/s: the first 90%% of the claims decided, over the wall time they took.\n\n| engine | claims | claims/s | peak heap |\n|---|--:|--:|--:|\n")
		for _, g := range r.Growth {
			p.printf("| %s | %s | %s | %s |\n", mdEscape(g.Engine), thousands(int64(g.Claims)),
				strconv.FormatFloat(g.ClaimsPerSecond, 'f', 1, 64), megabytes(g.PeakWorkerMemMB))
		}
	}
	if p.err != nil {
		return fmt.Errorf("write markdown report: %w", p.err)
	}
	return nil
}

// WriteChart draws s as a PNG at path: pending claims per simulated minute on
// top, Graph calls per minute below, one line per engine. Engines without a
// timeline are left out; with no timeline at all the axes are drawn empty.
func WriteChart(path string, s ScenarioResult) error {
	pending, calls := plot.New(), plot.New()
	pending.Title.Text = s.Name
	pending.Y.Label.Text = "pending claims"
	calls.Y.Label.Text = "Graph calls per minute"
	for _, p := range []*plot.Plot{pending, calls} {
		p.X.Label.Text = "simulated minutes"
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	for i, e := range s.Engines {
		if len(e.Timeline) == 0 {
			continue
		}
		pendingXY := make(plotter.XYs, len(e.Timeline))
		callsXY := make(plotter.XYs, len(e.Timeline))
		for j, sm := range e.Timeline {
			pendingXY[j] = plotter.XY{X: float64(sm.Minute), Y: float64(sm.Pending)}
			callsXY[j] = plotter.XY{X: float64(sm.Minute), Y: float64(sm.Calls)}
		}
		// Colour by the engine's index so an engine keeps its colour in
		// both panels even when another engine is skipped.
		if err := addLine(pending, e.Engine, pendingXY, i); err != nil {
			return fmt.Errorf("chart %q: %w", s.Name, err)
		}
		if err := addLine(calls, e.Engine, callsXY, i); err != nil {
			return fmt.Errorf("chart %q: %w", s.Name, err)
		}
	}
	// Share the x range so the same minute sits at the same place in both
	// panels; plot.Align below lines up the axes themselves.
	minX, maxX := math.Min(pending.X.Min, calls.X.Min), math.Max(pending.X.Max, calls.X.Max)
	if minX > maxX { // no samples at all: plain empty axes from 0 to 1
		minX, maxX = 0, 1
	}
	for _, p := range []*plot.Plot{pending, calls} {
		p.X.Min, p.X.Max = minX, maxX
		// Counts start at zero; the headroom keeps the legend off the lines.
		p.Y.Min = 0
		p.Y.Max = math.Max(p.Y.Max*1.2, 1)
	}

	img := vgimg.New(10*vg.Inch, 7*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{pending}, {calls}}, tiles, dc)
	pending.Draw(canvases[0][0])
	calls.Draw(canvases[1][0])

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart %q: %w", s.Name, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart %q: write %s: %w", s.Name, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart %q: close %s: %w", s.Name, path, err)
	}
	return nil
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, colour int) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("line for %s: %w", name, err)
	}
	l.Color = plotutil.Color(colour)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// WriteAll writes the whole report into dir (created if needed): report.json,
// report.md and one PNG chart per scenario.
func WriteAll(dir string, r Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: encode json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	// Two names can sanitize to the same file; refuse rather than let one
	// chart silently overwrite another.
	seen := make(map[string]string, len(r.Scenarios))
	for _, s := range r.Scenarios {
		name := chartFileName(s.Name)
		if other, dup := seen[name]; dup {
			return fmt.Errorf("write report: scenarios %q and %q share chart file %s", other, s.Name, name)
		}
		seen[name] = s.Name
		if err := WriteChart(filepath.Join(dir, name), s); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// chartFileName maps a scenario name to a safe file name: ASCII letters,
// digits, '-' and '_' are kept, every run of anything else becomes one '_'.
func chartFileName(scenario string) string {
	var b strings.Builder
	lastSub := false
	for _, c := range scenario {
		ok := c == '-' || c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
		switch {
		case ok:
			b.WriteRune(c)
			lastSub = false
		case !lastSub:
			b.WriteByte('_')
			lastSub = true
		}
	}
	if b.Len() == 0 {
		return "scenario.png"
	}
	return b.String() + ".png"
}

// printer keeps the first write error so the rendering code can stay a flat
// sequence of printf calls.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// thousands formats n with ',' between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

func ratio(n, of int) string { return thousands(int64(n)) + "/" + thousands(int64(of)) }

// percent formats a 0..1 share; below 1% it keeps two decimals so a small
// but non-zero error rate does not round to a misleading "0.0%".
func percent(share float64) string {
	pct := share * 100
	switch {
	case pct == 0:
		return "0%"
	case math.Abs(pct) < 1:
		return strconv.FormatFloat(pct, 'f', 2, 64) + "%"
	default:
		return strconv.FormatFloat(pct, 'f', 1, 64) + "%"
	}
}

func megabytes(mb float64) string { return strconv.FormatFloat(mb, 'f', 1, 64) + " MB" }

func speed(x float64) string {
	if x == 1 {
		return "1x (real time)"
	}
	return strconv.FormatFloat(x, 'g', -1, 64) + "x"
}

// duration rounds d to a precision that suits its size: "250ms", "12.3s",
// "3m12s", "2h5m".
func duration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// mdEscape keeps a value from breaking out of its Markdown table cell.
func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// verdicts lists verdict counts, largest first (ties by name), as
// "approved_by_sample/sample 20,000 · verified/webhook 9,876".
func verdicts(by map[string]int) string {
	if len(by) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if by[keys[i]] != by[keys[j]] {
			return by[keys[i]] > by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + thousands(int64(by[k]))
	}
	return strings.Join(parts, " · ")
}
