package bench_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/bench"
)

// sampleReport is a small hand-built report whose figures the tests look
// for in the rendered output.
func sampleReport() bench.Report {
	ours := bench.EngineResult{
		Engine: bench.EngineOurs, Claims: 2000000, Decided: 1999990,
		WallSeconds: 5832, DecidedPerHourWall: 1234567,
		Verifiable: 1000, RealEvidence: 973, RealEvidenceShare: 0.973,
		Fraudulent: 500, FraudApproved: 6, FraudApprovedShare: 0.012,
		Genuine: 800, GenuineRejected: 0, GenuineRejectedShare: 0,
		Calls: 45678, Throttles: 3, BudgetUtilization: 0.875,
		HistoryEvents: 24690, EventsPerDecided: 12.345,
		LatencyP50: 3*time.Minute + 12*time.Second + 400*time.Millisecond, LatencyP95: 2*time.Hour + 5*time.Minute + 10*time.Second,
		ByVerdict:   map[string]int{"verified/webhook": 900, "approved_by_sample/sample": 1200, "rejected/graph": 73},
		Misjudged:   map[string]int{"fraud approved/ig_mention": 5, "fraud approved/ig_tag": 1},
		PeakPending: 15000, PeakWorkerMemMB: 312.44, WebhookEvents: 1000, WebhooksDelivered: 990,
		Timeline: []bench.Sample{
			{Minute: 0, Pending: 2000, Calls: 10}, {Minute: 1, Pending: 1500, Calls: 40},
			{Minute: 2, Pending: 700, Calls: 38}, {Minute: 3, Pending: 0, Calls: 5},
		},
	}
	base := bench.EngineResult{
		Engine: bench.EngineBaseline, Claims: 2000000, Decided: 1500000, DecidedPerHourWall: 98765.4,
		Verifiable: 1000, RealEvidence: 400, RealEvidenceShare: 0.4,
		Fraudulent: 500, FraudApproved: 125, FraudApprovedShare: 0.25,
		Genuine: 800, GenuineRejected: 4, GenuineRejectedShare: 0.005,
		Calls: 90000, Throttles: 1234, BudgetUtilization: 1.5,
		LatencyP50: 1500 * time.Millisecond, LatencyP95: 41 * time.Second,
		PeakPending: 2000000, PeakWorkerMemMB: 1024,
		Timeline: []bench.Sample{{Minute: 0, Pending: 2000, Calls: 60}, {Minute: 1, Pending: 1990, Calls: 60}},
	}
	burstOurs, burstBase := ours, base
	burstOurs.Timeline, burstBase.Timeline = nil, nil // a scenario without samples
	return bench.Report{
		Started: time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC),
		Machine: "linux/amd64, 2 CPUs, go1.26.8",
		Store:   "sqlite",
		Scenarios: []bench.ScenarioResult{
			{
				Name: "drain", About: "a backlog of claims drained as fast as possible",
				Seed: 42, Speed: 60, Claims: 2000000,
				Engines: []bench.EngineResult{ours, base},
				Targets: []bench.Target{
					{What: "p95 latency under 3h", Measured: "2h5m", Met: true},
					{What: "no throttle errors", Measured: "3 throttles", Met: false},
				},
			},
			{
				Name: "burst / 10x", About: "a sudden burst", Seed: 7, Speed: 1, Claims: 2000000,
				Engines: []bench.EngineResult{burstOurs, burstBase},
			},
		},
		Growth: []bench.GrowthPoint{
			{Engine: bench.EngineOurs, Claims: 50000, ClaimsPerSecond: 812.34, PeakWorkerMemMB: 120.5},
			{Engine: bench.EngineOurs, Claims: 100000, ClaimsPerSecond: 799.9, PeakWorkerMemMB: 130},
			{Engine: bench.EngineBaseline, Claims: 50000, ClaimsPerSecond: 27.4, PeakWorkerMemMB: 2048},
		},
	}
}

func TestPrintTable(t *testing.T) {
	var buf bytes.Buffer
	if err := bench.PrintTable(&buf, sampleReport()); err != nil {
		t.Fatalf("PrintTable: %v", err)
	}
	out := buf.String()

	// Every scenario has a header row with one column per engine, in order.
	headers := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "measure") {
			headers++
			if got, want := strings.Fields(line), []string{"measure", bench.EngineOurs, bench.EngineBaseline}; !reflect.DeepEqual(got, want) {
				t.Errorf("header row = %q, want fields %q", line, want)
			}
		}
	}
	if headers != 2 {
		t.Errorf("found %d table header rows, want 2 (one per scenario)\n%s", headers, out)
	}

	tests := []struct{ name, want string }{
		{"scenario header", "== drain: a backlog of claims drained as fast as possible"},
		{"scenario context", "claims 2,000,000, seed 42, speed 60x"},
		{"real-time speed", "speed 1x (real time)"},
		{"decided", "1,999,990/2,000,000"},
		{"decided per hour", "1,234,567/h"},
		{"decided per hour rounded", "98,765/h"},
		{"real evidence", "97.3% (973/1,000)"},
		{"fraud approved", "125/500 (25.0%)"},
		{"small share keeps decimals", "4/800 (0.50%)"},
		{"zero share", "0/800 (0%)"},
		{"graph calls", "45,678"},
		{"budget utilization", "87.5%"},
		{"events per decided", "12.35"},
		{"no temporal history", "n/a"},
		{"p50 in minutes", "3m12s"},
		{"p95 in hours", "2h5m"},
		{"p50 in seconds", "1.5s"},
		{"peak memory", "312.4 MB"},
		{"webhooks delivered", "990/1,000"},
		{"verdicts largest first", "engine: approved_by_sample/sample 1,200 · verified/webhook 900 · rejected/graph 73"},
		{"misjudged by kind", "engine: fraud approved/ig_mention 5 · fraud approved/ig_tag 1"},
		{"nothing misjudged", "seed-baseline: -"},
		{"missed target", "MISSED"},
		{"missed target text", "no throttle errors"},
		{"growth title", "cost growth"},
		{"growth rate", "812.3"},
		{"growth claims", "100,000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
	if strings.Count(out, "MISSED") != 1 {
		t.Errorf("want exactly one MISSED (one target missed):\n%s", out)
	}
}

func TestPrintTableWithoutGrowth(t *testing.T) {
	r := sampleReport()
	r.Growth = nil
	var buf bytes.Buffer
	if err := bench.PrintTable(&buf, r); err != nil {
		t.Fatalf("PrintTable: %v", err)
	}
	if strings.Contains(buf.String(), "cost growth") {
		t.Errorf("growth table printed for a report without growth:\n%s", buf.String())
	}
}

func TestWriteMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := bench.WriteMarkdown(&buf, sampleReport()); err != nil {
		t.Fatalf("WriteMarkdown: %v", err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "# ") {
		t.Errorf("markdown does not start with a title:\n%s", out)
	}
	tests := []struct{ name, want string }{
		{"context line", "linux/amd64, 2 CPUs, go1.26.8 · store: sqlite · started: 2026-05-01 12:30:00 UTC"},
		{"engine header row", "| measure | engine | seed-baseline |"},
		{"decided per hour", "| 1,234,567/h |"},
		{"chart link", "![drain](drain.png)"},
		{"sanitized chart link", "![burst / 10x](burst_10x.png)"},
		{"met target", "✅ met: p95 latency under 3h"},
		{"missed target", "❌ missed: no throttle errors"},
		{"growth header", "| engine | claims | claims/s | peak heap |"},
		{"growth row", "| seed-baseline | 50,000 | 27.4 | 2048.0 MB |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, tt.want) {
				t.Errorf("markdown lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestWriteAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "out") // must be created
	want := sampleReport()
	if err := bench.WriteAll(dir, want); err != nil {
		t.Fatalf("WriteAll: %v", err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("read report.json: %v", err)
	}
	var got bench.Report
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode report.json: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report.json does not round-trip:\ngot  %+v\nwant %+v", got, want)
	}

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatalf("read report.md: %v", err)
	}
	if !strings.Contains(string(md), "![drain](drain.png)") {
		t.Errorf("report.md lacks the chart link:\n%s", md)
	}

	for _, name := range []string{"drain.png", "burst_10x.png"} {
		t.Run(name, func(t *testing.T) { checkPNG(t, filepath.Join(dir, name)) })
	}
}

func TestWriteAllRejectsCollidingChartNames(t *testing.T) {
	r := sampleReport()
	r.Scenarios[0].Name = "burst?10x" // sanitizes to burst_10x.png like "burst / 10x"
	if err := bench.WriteAll(t.TempDir(), r); err == nil {
		t.Fatal("WriteAll accepted two scenarios sharing one chart file")
	}
}

func TestWriteChart(t *testing.T) {
	full := sampleReport().Scenarios[0]
	oneEmpty := full
	oneEmpty.Engines = append([]bench.EngineResult(nil), full.Engines...)
	oneEmpty.Engines[1].Timeline = nil
	allEmpty := sampleReport().Scenarios[1]
	noEngines := bench.ScenarioResult{Name: "nothing"}

	tests := []struct {
		name string
		s    bench.ScenarioResult
	}{
		{"both timelines", full},
		{"one empty timeline", oneEmpty},
		{"all timelines empty", allEmpty},
		{"no engines", noEngines},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chart.png")
			if err := bench.WriteChart(path, tt.s); err != nil {
				t.Fatalf("WriteChart: %v", err)
			}
			checkPNG(t, path)
		})
	}
}

func TestWriteChartUnwritablePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "chart.png")
	if err := bench.WriteChart(path, sampleReport().Scenarios[0]); err == nil {
		t.Fatal("WriteChart into a missing directory did not fail")
	}
}

// checkPNG asserts path holds a decodable PNG of roughly the chart's size
// (10in x 7in), not a stub.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s lacks the PNG signature", path)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 || b.Dx() <= b.Dy() {
		t.Errorf("%s is %dx%d, want a landscape chart of at least 500x300", path, b.Dx(), b.Dy())
	}
}
