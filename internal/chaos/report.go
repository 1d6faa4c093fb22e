package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a suite's outcome, written as report.json.
type Report struct {
	Started   time.Time `json:"started"`
	Machine   string    `json:"machine"`
	Seed      int64     `json:"seed"`
	Scenarios []Result  `json:"scenarios"`
	OK        bool      `json:"ok"`
}

// PrintTable writes one row per scenario (claims, lost, doubled, wrongly
// rejected, mismatched, left leased, leaks, provisional, revoked, the
// longest recovery) and then each fault's recovery.
func PrintTable(w io.Writer, rep Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tstore\tclaims\tsubmissions\tdecided\tlost\tdoubled\twrongly rejected\tmismatched\tleft leased\tleaks\tprovisional\trevoked\tmax recovery\tdrain\twall\tok\t")
	for _, r := range rep.Scenarios {
		rec := "n/a"
		if len(r.Faults) > 0 {
			rec = fmt.Sprintf("%.1fs", r.MaxRecoveryS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.0fs\t%.0fs\t%v\t\n",
			r.Scenario, r.Store, r.Claims, r.Submissions, r.Decided, r.Lost, r.Doubled, r.WronglyRejected, r.Mismatched, r.LeftLeased,
			r.Leaks, r.Provisional, r.Revoked, rec, r.DrainS, r.WallS, r.OK)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rep.Scenarios {
		fmt.Fprintf(w, "\n%s: %s\n", r.Scenario, r.About)
		if len(r.Faults) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  fault\tat\tlifted\topen before\tpeak open\tdecisions resumed\trecovered (backlog cleared)\tclaims touched\topen when lifted\t")
			secs := func(s float64) string {
				if s < 0 {
					return "never"
				}
				return fmt.Sprintf("%.1fs", s)
			}
			for _, f := range r.Faults {
				resumed := secs(f.ResumeS)
				if f.OpenAtEnd == 0 {
					resumed = "n/a"
				}
				fmt.Fprintf(tw, "  %s %s\t%.1fs\t%.1fs\t%d\t%d\t%s\t%s\t%d\t%d\t\n", f.Name, f.Detail, f.StartS, f.EndS, f.OpenBefore, f.PeakOpen,
					resumed, secs(f.RecoveryS), f.Affected, f.OpenAtEnd)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "  verdicts: %s\n", verdictLine(r.ByVerdict))
		fmt.Fprintf(w, "  submit to verdict: p50 %.1fs, p99 %.1fs, max %.1fs\n", r.LatencyP50S, r.LatencyP99S, r.LatencyMaxS)
		fmt.Fprintf(w, "  graph calls %d %v; webhooks: %d events, %d delivered, %d duplicated, %d failed; duplicate submissions refused: %d\n",
			r.GraphCalls, r.GraphByOutcome, r.Webhooks.Events, r.Webhooks.Delivered, r.Webhooks.Duplicates, r.Webhooks.Failed, r.DuplicatesRefused)
		if len(r.RefusedCalls) > 0 {
			fmt.Fprintf(w, "  refused calls: %s\n", strings.Join(r.RefusedCalls, "; "))
		}
		fmt.Fprintf(w, "  secrets: %d values looked for in %d workflow histories (%.1f MB, temporal workflow show --output json) and %d log files (%.1f MB) in %.0fs: %d found\n",
			r.SecretsChecked, r.Workflows, float64(r.HistoryBytes)/1e6, r.LogFiles, float64(r.LogBytes)/1e6, r.ScanS, r.Leaks)
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  PROBLEM: %s\n", p)
		}
		for _, l := range r.LeakDetails {
			fmt.Fprintf(w, "  LEAK: %s\n", l)
		}
	}
	return nil
}

func verdictLine(by map[string]int) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes the report to dir/report.json.
func WriteJSON(dir string, rep Report) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "report.json")
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}
