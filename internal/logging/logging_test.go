package logging_test

import (
	"bytes"
	"go.uber.org/zap/zapcore"
	"strings"
	"testing"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/secret"
)

func TestTemporalAdapterKeepsFieldsAndRedactsSecrets(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	l := log.With(logging.Temporal(zap.New(core)), "TenantID", "acme")
	l.Info("verified", "claims", 3, "token", secret.New("EAABvalue"), "odd")

	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("got %d entries", len(entries))
	}
	m := entries[0].ContextMap()
	if m["TenantID"] != "acme" || m["claims"] != int64(3) || m["extra"] != "odd" {
		t.Fatalf("fields = %v", m)
	}
	if s, _ := m["token"].(string); s == "EAABvalue" {
		t.Fatal("secret logged in clear")
	}
	if _, err := logging.New("verbose"); err == nil {
		t.Fatal("bad level accepted")
	}
}

func TestEncodedLogNeverHoldsSecretValue(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	z := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
	logging.Temporal(z).Error("graph call failed", "token", secret.New("EAABvalue"), "tokens", []secret.Value{secret.New("EAABother")})
	if out := buf.String(); strings.Contains(out, "EAAB") || !strings.Contains(out, "redacted") {
		t.Fatalf("log line = %s", out)
	}
}
