package config_test

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/socialproof/verifier/internal/config"
)

// docker-compose.temporal.yml cannot be run here (no Docker): this reads it
// as YAML and checks it against the configuration, so a renamed setting or
// a missing service shows up. Where Docker runs, `docker compose -f
// docker-compose.temporal.yml config` checks the rest.
func TestComposeFileMatchesTheConfiguration(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.temporal.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Profiles    []string          `yaml:"profiles"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.temporal.yml: %v", err)
	}
	for _, name := range []string{"postgresql", "temporal", "temporal-ui", "setup", "worker", "metasim"} {
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
}
