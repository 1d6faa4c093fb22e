package config_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/workflows"
)

// composeService is what the tests read of a service in
// docker-compose.temporal.yml.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Profiles    []string          `yaml:"profiles"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   any               `yaml:"depends_on"` // a list, or a map of conditions
	Entrypoint  any               `yaml:"entrypoint"`
	Command     any               `yaml:"command"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.temporal.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.temporal.yml: %v", err)
	}
	return compose
}

// dependsOn gives the services s waits for and the condition of each
// (service_started for the short list form).
func (s composeService) dependsOn() map[string]string {
	deps := map[string]string{}
	switch d := s.DependsOn.(type) {
	case []any:
		for _, name := range d {
			deps[fmt.Sprint(name)] = "service_started"
		}
	case map[any]any:
		for name, v := range d {
			cond := "service_started"
			if m, ok := v.(map[any]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			deps[fmt.Sprint(name)] = cond
		}
	}
	return deps
}

// script is the service's entrypoint and command as one text.
func (s composeService) script() string {
	var parts []string
	for _, v := range []any{s.Entrypoint, s.Command} {
		switch x := v.(type) {
		case string:
			parts = append(parts, x)
		case []any:
			for _, p := range x {
				parts = append(parts, fmt.Sprint(p))
			}
		}
	}
	return strings.Join(parts, " ")
}

// docker-compose.temporal.yml cannot be run here (no Docker): this reads it
// as YAML and checks it against the configuration, so a renamed setting or
// a missing service shows up. Where Docker runs, `docker compose -f
// docker-compose.temporal.yml config` checks the rest.
func TestComposeFileMatchesTheConfiguration(t *testing.T) {
	compose := readCompose(t)
	for _, name := range []string{"postgresql", "temporal-admin-tools", "temporal", "temporal-create-namespace",
		"temporal-ui", "setup", "worker", "metasim", "prometheus", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	if p := compose.Services["metasim"].Profiles; !slices.Equal(p, []string{"demo"}) {
		t.Errorf("metasim runs only in the demo profile, got %v", p)
	}

	// Every variable the engine's services set is one the configuration reads.
	known := map[string]bool{}
	envName := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg := config.Default()
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if m := envName.FindStringSubmatch(f.Usage); m != nil {
			known[m[1]] = true
		}
	})
	for _, svc := range []string{"setup", "worker"} {
		for name := range compose.Services[svc].Environment {
			if !known[name] {
				t.Errorf("%s sets %s, which the configuration does not read", svc, name)
			}
		}
	}
	worker := compose.Services["worker"]
	for name, port := range map[string]string{"API_ADDR": "8090", "METRICS_ADDR": "9464"} {
		addr := worker.Environment[name]
		if !strings.HasSuffix(addr, ":"+port) || !slices.Contains(worker.Ports, port+":"+port) {
			t.Errorf("worker: %s=%q and ports %v: want it served and published on %s", name, addr, worker.Ports, port)
		}
	}

	// The Web UI decodes payloads through the worker's codec server, which
	// allows the UI's origin; nothing else claims the UI's CORS.
	ui := compose.Services["temporal-ui"]
	if got := ui.Environment["TEMPORAL_CODEC_ENDPOINT"]; got != "http://localhost:8090/codec" {
		t.Errorf("temporal-ui: TEMPORAL_CODEC_ENDPOINT=%q, want the worker's codec server http://localhost:8090/codec", got)
	}
	if !slices.Contains(ui.Ports, "8080:8080") || worker.Environment["CODEC_CORS_ORIGIN"] != "http://localhost:8080" {
		t.Errorf("the UI on %v and the codec server's CODEC_CORS_ORIGIN=%q should agree on http://localhost:8080",
			ui.Ports, worker.Environment["CODEC_CORS_ORIGIN"])
	}
	if got, ok := ui.Environment["TEMPORAL_CORS_ORIGINS"]; ok && strings.Contains(got, ":3000") {
		t.Errorf("temporal-ui: TEMPORAL_CORS_ORIGINS=%q: :3000 is Grafana", got)
	}
}

// Temporal comes up in the order of Temporal's own compose examples: the
// schema job, the server, the namespace job, then the engine.
func TestComposeStartsTemporalInOrder(t *testing.T) {
	compose := readCompose(t)
	for _, dep := range []struct{ svc, on, cond string }{
		{"temporal-admin-tools", "postgresql", "service_healthy"},
		{"temporal", "temporal-admin-tools", "service_completed_successfully"},
		{"temporal-create-namespace", "temporal", "service_healthy"},
		{"temporal-ui", "temporal", "service_healthy"},
		{"setup", "temporal-create-namespace", "service_completed_successfully"},
		{"worker", "setup", "service_completed_successfully"},
	} {
		if got := compose.Services[dep.svc].dependsOn()[dep.on]; got != dep.cond {
			t.Errorf("%s depends on %s with %q, want %q", dep.svc, dep.on, got, dep.cond)
		}
	}
	for _, svc := range []string{"postgresql", "temporal"} {
		if compose.Services[svc].Healthcheck["test"] == nil {
			t.Errorf("%s has no healthcheck, and others wait for it to be healthy", svc)
		}
	}
	for name, s := range compose.Services {
		if strings.HasPrefix(s.Image, "temporalio/auto-setup") {
			t.Errorf("%s uses %s: auto-setup is deprecated; the schema and namespace jobs replace it", name, s.Image)
		}
		// Compose substitutes $NAME itself: scripts write $$ for the shell.
		if rest := strings.ReplaceAll(s.script(), "$$", ""); strings.Contains(rest, "$") {
			t.Errorf("%s: its command has a single $, which compose would substitute from the host's environment", name)
		}
	}

	// The admin tools match the server's version.
	server := compose.Services["temporal"]
	version, ok := strings.CutPrefix(server.Image, "temporalio/server:")
	if !ok {
		t.Fatalf("temporal: image %q, want temporalio/server:<version>", server.Image)
	}
	for _, job := range []string{"temporal-admin-tools", "temporal-create-namespace"} {
		if img := compose.Services[job].Image; !strings.HasPrefix(img, "temporalio/admin-tools:"+version) {
			t.Errorf("%s: image %q, want temporalio/admin-tools:%s[-...] like the server", job, img, version)
		}
	}

	// The schema job creates the databases the server uses, on the database
	// the server connects to.
	schema := compose.Services["temporal-admin-tools"]
	pg := compose.Services["postgresql"]
	env := server.Environment
	if env["DB"] != "postgres12" || schema.Environment["SQL_PLUGIN"] != env["DB"] {
		t.Errorf("temporal DB=%q and the schema job's SQL_PLUGIN=%q: want postgres12 for both", env["DB"], schema.Environment["SQL_PLUGIN"])
	}
	for sqlVar, serverVar := range map[string]string{"SQL_HOST": "POSTGRES_SEEDS", "SQL_PORT": "DB_PORT", "SQL_USER": "POSTGRES_USER", "SQL_PASSWORD": "POSTGRES_PWD"} {
		if schema.Environment[sqlVar] == "" || schema.Environment[sqlVar] != env[serverVar] {
			t.Errorf("schema job %s=%q, server %s=%q: want the same", sqlVar, schema.Environment[sqlVar], serverVar, env[serverVar])
		}
	}
	if env["POSTGRES_USER"] != pg.Environment["POSTGRES_USER"] || env["POSTGRES_PWD"] != pg.Environment["POSTGRES_PASSWORD"] {
		t.Errorf("temporal connects as %s/%s, postgresql has %s/%s", env["POSTGRES_USER"], env["POSTGRES_PWD"],
			pg.Environment["POSTGRES_USER"], pg.Environment["POSTGRES_PASSWORD"])
	}
	script := schema.script()
	for _, want := range []string{
		"temporal-sql-tool", "setup-schema -v 0.0", "update-schema", "/etc/temporal/schema/postgresql/v12/",
		"schema " + env["DBNAME"] + " temporal\n", "schema " + env["VISIBILITY_DBNAME"] + " visibility\n",
	} {
		if env["DBNAME"] == "" || env["VISIBILITY_DBNAME"] == "" || !strings.Contains(script, want) {
			t.Errorf("schema job: its command lacks %q (server DBNAME=%q VISIBILITY_DBNAME=%q)", want, env["DBNAME"], env["VISIBILITY_DBNAME"])
		}
	}
}

// The namespace job creates the engine's namespace and every search
// attribute the code defines, with its type.
func TestComposeCreatesTheNamespaceAndSearchAttributes(t *testing.T) {
	compose := readCompose(t)
	job := compose.Services["temporal-create-namespace"]
	engine := compose.Services["setup"].Environment
	namespace := engine["TEMPORAL_NAMESPACE"]
	if namespace == "" {
		namespace = config.Default().Namespace
	}
	if job.Environment["NAMESPACE"] != namespace {
		t.Errorf("temporal-create-namespace: NAMESPACE=%q, the engine uses %q", job.Environment["NAMESPACE"], namespace)
	}
	if job.Environment["TEMPORAL_ADDRESS"] != engine["TEMPORAL_ADDRESS"] {
		t.Errorf("temporal-create-namespace: TEMPORAL_ADDRESS=%q, the engine uses %q", job.Environment["TEMPORAL_ADDRESS"], engine["TEMPORAL_ADDRESS"])
	}

	var want []string
	for _, k := range workflows.SearchAttributeKeys {
		want = append(want, k.GetName()+"="+k.GetValueType().String())
	}
	got := strings.Fields(job.Environment["SEARCH_ATTRIBUTES"])
	sort.Strings(want)
	sort.Strings(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("temporal-create-namespace: SEARCH_ATTRIBUTES=%v, the code defines %v (workflows.SearchAttributeKeys)", got, want)
	}
	script := job.script()
	for _, step := range []string{"temporal operator namespace create", "temporal operator search-attribute create", "$$SEARCH_ATTRIBUTES", "already exists"} {
		if !strings.Contains(script, step) {
			t.Errorf("temporal-create-namespace: its command lacks %q", step)
		}
	}
}

// The monitoring profile: Prometheus and Grafana, with their configuration
// mounted from ./deploy.
func TestComposeMonitoringProfile(t *testing.T) {
	compose := readCompose(t)
	for _, svc := range []string{"prometheus", "grafana"} {
		if p := compose.Services[svc].Profiles; !slices.Equal(p, []string{"monitoring"}) {
			t.Errorf("%s runs only in the monitoring profile, got %v", svc, p)
		}
	}
	if ports := compose.Services["grafana"].Ports; !slices.Contains(ports, "3000:3000") {
		t.Errorf("grafana: ports %v, want 3000:3000", ports)
	}
	wantMounts := map[string]string{ // source: service
		"./deploy/prometheus":           "prometheus",
		"./deploy/grafana/provisioning": "grafana",
		"./deploy/grafana/dashboards":   "grafana",
		"./deploy/init-verifier-db.sql": "postgresql",
	}
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./deploy/") {
				continue
			}
			if _, err := os.Stat(filepath.Join("../..", src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
			if wantMounts[src] == name {
				delete(wantMounts, src)
			}
		}
	}
	for src, svc := range wantMounts {
		t.Errorf("%s does not mount %s", svc, src)
	}
}
