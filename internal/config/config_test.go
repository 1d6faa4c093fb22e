package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/config"
)

func TestFlagsOverrideEnvironmentOverrideDefaults(t *testing.T) {
	t.Setenv("BATCH_SIZE", "250")
	t.Setenv("SPEED", "60")
	t.Setenv("STORE_URL", "sqlite:/tmp/x.db")
	c := config.Default()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-store", "postgres://db/verifier"}); err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 250 || c.Speed != 60 || c.StoreURL != "postgres://db/verifier" || c.Interval != time.Minute {
		t.Fatalf("config = %+v", c)
	}
	if got := c.Scaled(c.Interval); got != time.Second {
		t.Fatalf("Scaled(1m) at speed 60 = %v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config.Config)
		errHas string
	}{
		{"defaults", func(*config.Config) {}, ""},
		{"zero speed", func(c *config.Config) { c.Speed = 0 }, "speed"},
		{"huge batch", func(c *config.Config) { c.BatchSize = 1_000_000 }, "batch size"},
		{"interval under a second", func(c *config.Config) { c.Speed = 600 }, "under a second"},
		{"raw app secret", func(c *config.Config) { c.AppSecretRef = "s3cr3t" }, "app secret"},
		{"no store", func(c *config.Config) { c.StoreURL = "" }, "store URL"},
		{"unknown mode", func(c *config.Config) { c.Mode = "trust" }, "mode must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.change(&c)
			err := c.Validate()
			if tt.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want containing %q", err, tt.errHas)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatal("error echoes the secret")
			}
		})
	}
}

func TestLoadTenants(t *testing.T) {
	tests := []struct {
		name, body, errHas string
	}{
		{"valid", `{"platform_token":"platform","tokens":[{"id":"platform","accounts":["1"],"budget":{"calls":200,"window":"1h"},"secret":"env:META_TOKEN"},
			{"id":"tok-b","secret":"file:/run/secrets/b"}],
			"tenants":[{"id":"a","tier":"standard","accounts":[{"id":"1","type":"instagram"}]},{"id":"b","tier":"premium","token":"tok-b","accounts":[]}]}`, ""},
		{"token value instead of reference", `{"tokens":[{"id":"platform","secret":"EAABxyz"}]}`, "never the value"},
		{"unknown field", `{"tokens":[],"tenant":[]}`, "unknown field"},
		{"tenant names a missing token", `{"tokens":[],"tenants":[{"id":"a","tier":"premium","token":"nope"}]}`, "not among the tokens"},
		{"bad tier", `{"tenants":[{"id":"a","tier":"gold"}]}`, "tier"},
		{"bad window", `{"tokens":[{"id":"t","secret":"env:X","budget":{"calls":1,"window":"1m"}}]}`, "window"},
		{"bad account type", `{"tenants":[{"id":"a","tier":"standard","accounts":[{"id":"1","type":"tiktok"}]}]}`, "want instagram or page"},
		{"platform token missing", `{"platform_token":"platform","tokens":[]}`, "platform token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tenants.json")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := config.LoadTenants(path)
			if tt.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tok := f.Tokens[1].Token(); tok.BudgetCalls != 200 || tok.BudgetWindow != "1h" {
					t.Fatalf("default budget not applied: %+v", tok)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want containing %q", err, tt.errHas)
			}
			if strings.Contains(err.Error(), "EAABxyz") {
				t.Fatal("error echoes the token value")
			}
		})
	}
}
