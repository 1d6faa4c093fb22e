package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"
)

// metricSources are the files that define the engine's verifier_* metrics:
// prometheus.NewDesc("verifier_...", ...) or ...Opts{Name: "verifier_..."}.
var metricSources = []string{"../../worker/metrics.go"}

var definedMetric = regexp.MustCompile(`(?:prometheus\.NewDesc\(\s*|\bName:\s*)"(verifier_[a-z0-9_]+)"`)

// definedMetrics reads the verifier_* metric names from the Go sources, so a
// renamed or removed metric fails the dashboard test.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, path := range metricSources {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range definedMetric.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	if len(names) == 0 {
		t.Fatalf("no verifier_* metrics found in %v", metricSources)
	}
	return names
}

var usedMetric = regexp.MustCompile(`\bverifier_[a-z0-9_]+`)

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// The Grafana dashboard is provisioned as is where Docker runs: this checks
// that it parses, that every panel reads the provisioned Prometheus, says
// what to do when it looks wrong, and uses only metrics the worker defines.
func TestDashboardUsesDefinedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/dashboards/verifier.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string           `json:"uid"`
		Title         string           `json:"title"`
		SchemaVersion int              `json:"schemaVersion"`
		Panels        []dashboardPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("verifier.json: %v", err)
	}
	if d.UID != "verifier" || d.Title != "Claim verifier" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}

	defined := definedMetrics(t)
	used := map[string]bool{}
	use := func(where, expr string) {
		for _, name := range usedMetric.FindAllString(expr, -1) {
			used[name] = true
			if !defined[name] {
				t.Errorf("%s: %s is not defined in %v", where, name, metricSources)
			}
		}
	}

	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
		if v.Datasource == nil || v.Datasource.UID != "prometheus" {
			t.Errorf("variable %s: datasource %+v, want uid prometheus", v.Name, v.Datasource)
		}
		use("variable "+v.Name, v.Definition)
	}
	sort.Strings(vars)
	if !slices.Equal(vars, []string{"tenant", "token"}) {
		t.Errorf("variables %v, want tenant and token", vars)
	}

	ids := map[int]bool{}
	for _, p := range d.Panels {
		where := "panel " + p.Title
		if ids[p.ID] {
			t.Errorf("%s: id %d used twice", where, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v is outside the 24 columns", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "prometheus" {
			t.Errorf("%s: datasource %+v, want uid prometheus", where, p.Datasource)
		}
		if strings.TrimSpace(p.Description) == "" {
			t.Errorf("%s: no description (what to do when it looks wrong)", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, q := range p.Targets {
			if q.Datasource != nil && q.Datasource.UID != "prometheus" {
				t.Errorf("%s: a query reads datasource %q", where, q.Datasource.UID)
			}
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("%s: an empty query", where)
			}
			use(where, q.Expr)
		}
	}
	if len(used) == 0 {
		t.Error("the dashboard uses no verifier_* metric")
	}
}

// Prometheus scrapes the worker's metrics port, and Grafana's provisioning
// points at that Prometheus and at the dashboards as compose mounts them.
func TestMonitoringConfiguration(t *testing.T) {
	compose := readCompose(t)

	raw, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			ScrapeTimeout  string `yaml:"scrape_timeout"`
			MetricsPath    string `yaml:"metrics_path"`
			StaticConfigs  []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(raw, &prom); err != nil {
		t.Fatalf("deploy/prometheus/prometheus.yml: %v", err)
	}
	_, metricsPort, _ := strings.Cut(compose.Services["worker"].Environment["METRICS_ADDR"], ":")
	scraped := false
	for _, sc := range prom.ScrapeConfigs {
		interval := sc.ScrapeInterval
		if interval == "" {
			interval = prom.Global.ScrapeInterval
		}
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, "worker:"+metricsPort) {
				scraped = true
				if interval != "15s" || (sc.MetricsPath != "" && sc.MetricsPath != "/metrics") {
					t.Errorf("job %s scrapes the worker every %q at %q, want 15s at /metrics", sc.JobName, interval, sc.MetricsPath)
				}
				// Prometheus refuses a timeout longer than the interval.
				if sc.ScrapeTimeout != "" {
					timeout, err1 := time.ParseDuration(sc.ScrapeTimeout)
					every, err2 := time.ParseDuration(interval)
					if err1 != nil || err2 != nil || timeout > every {
						t.Errorf("job %s: scrape_timeout %q, scrape_interval %q", sc.JobName, sc.ScrapeTimeout, interval)
					}
				}
			}
		}
	}
	if !scraped {
		t.Errorf("deploy/prometheus/prometheus.yml does not scrape worker:%s (METRICS_ADDR)", metricsPort)
	}

	raw, err = os.ReadFile("../../deploy/grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(raw, &ds); err != nil {
		t.Fatalf("grafana datasources: %v", err)
	}
	promURL := ""
	for _, p := range compose.Services["prometheus"].Ports {
		_, port, _ := strings.Cut(p, ":")
		promURL = "http://prometheus:" + port
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != "prometheus" || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != promURL {
		t.Errorf("grafana datasources %+v, want one prometheus, uid prometheus, at %s", ds.Datasources, promURL)
	}

	raw, err = os.ReadFile("../../deploy/grafana/provisioning/dashboards/verifier.yml")
	if err != nil {
		t.Fatal(err)
	}
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(raw, &providers); err != nil {
		t.Fatalf("grafana dashboard providers: %v", err)
	}
	mounted := ""
	for _, v := range compose.Services["grafana"].Volumes {
		if src, rest, _ := strings.Cut(v, ":"); src == "./deploy/grafana/dashboards" {
			mounted, _, _ = strings.Cut(rest, ":")
		}
	}
	if len(providers.Providers) != 1 || providers.Providers[0].Type != "file" || mounted == "" || providers.Providers[0].Options.Path != mounted {
		t.Errorf("grafana dashboard providers %+v, want one file provider reading %q (where compose mounts deploy/grafana/dashboards)", providers.Providers, mounted)
	}
}

// The alert rules parse, name only metrics the worker defines, carry a
// severity, and each alert is explained in the operator guide.
func TestAlertRulesAreDefinedAndExplained(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Record      string            `yaml:"record"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yml: %v", err)
	}
	guide, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const explainedHeading = "### What each alert means and what to do"
	_, explained, found := bytes.Cut(guide, []byte(explainedHeading))
	if !found {
		t.Fatalf("docs/operations.md has no section %q", explainedHeading)
	}
	defined := definedMetrics(t)
	alerts := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: rule %q needs exactly one of alert and record, and an expr", g.Name, name)
			}
			for _, m := range usedMetric.FindAllString(r.Expr, -1) {
				if !defined[m] {
					t.Errorf("%s uses %s, which worker/metrics.go does not define", name, m)
				}
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", name, r.For, err)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts++
			if sev := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("%s: severity %q, want critical, warning or info", name, sev)
			}
			if !regexp.MustCompile(`\*\*[^*]*\b` + r.Alert + `\b[^*]*\*\*`).Match(explained) {
				t.Errorf("alert %s is not explained in docs/operations.md (a paragraph starting with its name in bold, under %q)", r.Alert, explainedHeading)
			}
		}
	}
	if alerts < 10 {
		t.Errorf("%d alerts in deploy/prometheus/alerts.yml", alerts)
	}
}
