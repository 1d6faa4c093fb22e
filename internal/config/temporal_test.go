package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/config"
)

// The connection to Temporal takes TLS and an API key from the SDK's
// environment configuration (Temporal Cloud), and the address and namespace
// from ours.
func TestClientOptionsFromTheSDKsEnvironmentConfiguration(t *testing.T) {
	noFile := filepath.Join(t.TempDir(), "none.toml") // not the developer's own ~/.config/temporal
	tests := []struct {
		name    string
		env     map[string]string
		wantTLS bool
		wantKey bool
		wantErr string
	}{
		{"local dev server", nil, false, false, ""},
		{"Temporal Cloud API key", map[string]string{"TEMPORAL_API_KEY": "cloud-key-123"}, true, true, ""},
		{"TLS on, no key", map[string]string{"TEMPORAL_TLS": "true"}, true, false, ""},
		{"missing CA file", map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": filepath.Join(t.TempDir(), "ca.pem")}, false, false, "ca.pem"},
		{"profile file", map[string]string{"TEMPORAL_CONFIG_FILE": writeProfile(t, `[profile.default]
api_key = "from-file-456"
`)}, true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TEMPORAL_CONFIG_FILE", noFile)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := config.Default()
			cfg.TemporalAddress, cfg.Namespace = "example.tmprl.cloud:7233", "prod.abc12"
			opts, err := cfg.ClientOptions()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.HostPort != cfg.TemporalAddress || opts.Namespace != cfg.Namespace {
				t.Errorf("connects to %s/%s, want %s/%s", opts.HostPort, opts.Namespace, cfg.TemporalAddress, cfg.Namespace)
			}
			if got := opts.ConnectionOptions.TLS != nil; got != tt.wantTLS {
				t.Errorf("TLS %v, want %v", got, tt.wantTLS)
			}
			if got := opts.Credentials != nil; got != tt.wantKey {
				t.Errorf("API key credentials %v, want %v", got, tt.wantKey)
			}
		})
	}
}

func writeProfile(t *testing.T, toml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
