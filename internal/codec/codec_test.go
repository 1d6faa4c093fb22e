package codec_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/socialproof/verifier/internal/codec"
)

func key(id string, b byte) codec.Key {
	return codec.Key{ID: id, Secret: bytes.Repeat([]byte{b}, codec.KeySize)}
}

func payloadOf(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTripAndRotation(t *testing.T) {
	old, err := codec.New(key("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	secret := map[string]string{"handle": "ann_example"}
	sealedOld, err := old.Encode([]*commonpb.Payload{payloadOf(t, secret)})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealedOld[0].Data, []byte("ann_example")) || string(sealedOld[0].Metadata["encryption-key-id"]) != "k1" {
		t.Fatalf("not sealed under k1: %+v", sealedOld[0])
	}
	// Rotation: k2 seals from now on; k1 still opens what it sealed.
	rotated, err := codec.New(key("k2", 2), key("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, _ := rotated.Encode([]*commonpb.Payload{payloadOf(t, secret)})
	if string(sealedNew[0].Metadata["encryption-key-id"]) != "k2" {
		t.Fatalf("rotated codec seals with %s", sealedNew[0].Metadata["encryption-key-id"])
	}
	plain := payloadOf(t, "written before encryption")
	opened, err := rotated.Decode([]*commonpb.Payload{sealedOld[0], sealedNew[0], plain})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range opened[:2] {
		var got map[string]string
		if err := converter.GetDefaultDataConverter().FromPayload(p, &got); err != nil || got["handle"] != "ann_example" {
			t.Errorf("payload %d: %v %v", i, got, err)
		}
	}
	if opened[2] != plain {
		t.Error("an unsealed payload is not passed through")
	}
	if _, err := old.Decode(sealedNew); err == nil || !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("a codec without k2 opened its payload: %v", err)
	}
	tampered := sealedOld[0]
	tampered.Data[len(tampered.Data)-1] ^= 1
	if _, err := rotated.Decode([]*commonpb.Payload{tampered}); err == nil {
		t.Error("a tampered payload opened")
	}
}

func TestParseKeys(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	c, err := codec.Parse("# active first\nk2:" + k + "\n\nk1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + "\n")
	if err != nil || c.ActiveKey() != "k2" {
		t.Fatalf("Parse: %v, active %v", err, c)
	}
	for name, text := range map[string]string{
		"no key":     "# nothing\n",
		"no id":      k,
		"short key":  "k:" + base64.StdEncoding.EncodeToString([]byte("short")),
		"not base64": "k:%%%",
		"duplicate":  "k:" + k + "\nk:" + k,
		"bad key id": "k x:" + k,
	} {
		_, err := codec.Parse(text)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), k) {
			t.Errorf("%s: the error quotes the key: %v", name, err)
		}
	}
}

// The codec server decodes for the Web UI what the workers sealed.
func TestCodecServer(t *testing.T) {
	c, _ := codec.New(key("k1", 1))
	srv := httptest.NewServer(c.Handler("http://localhost:8233"))
	defer srv.Close()
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: srv.URL})
	sealed, _ := c.Encode([]*commonpb.Payload{payloadOf(t, "ann_example")})
	opened, err := remote.Decode(sealed)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := converter.GetDefaultDataConverter().FromPayload(opened[0], &got); err != nil || got != "ann_example" {
		t.Fatalf("decoded %q, %v", got, err)
	}
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:8233" {
		t.Errorf("CORS preflight: %v", resp.Header)
	}
}

// A key's secret never prints: fmt in every verb, JSON, zap and slog see its
// id only.
func TestKeyPrintsWithoutItsSecret(t *testing.T) {
	secretBytes := bytes.Repeat([]byte{0x5a}, codec.KeySize) // "ZZZZ..."
	k := codec.Key{ID: "k-2026", Secret: secretBytes}
	var logged bytes.Buffer
	zlog := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logged), zap.DebugLevel))
	zlog.Info("key", zap.Any("key", k), zap.Any("keys", []codec.Key{k}), zap.Stringer("s", k))
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k)
	raw, err := json.Marshal(map[string]any{"key": k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k), fmt.Sprintf("%v", []codec.Key{k}), string(raw), logged.String()}
	for _, out := range outputs {
		if strings.Contains(out, "ZZZZ") || strings.Contains(out, base64.StdEncoding.EncodeToString(secretBytes)) ||
			strings.Contains(out, "5a5a5a") || strings.Contains(out, "90 90 90") {
			t.Errorf("the key's secret shows in %q", out)
		}
		if !strings.Contains(out, "k-2026") {
			t.Errorf("the key's id is missing from %q", out)
		}
	}
}
