// Package codec encrypts Temporal payloads: claims carry personal data
// (handles), and workflow inputs, results and memos are stored by the
// Temporal server. A Codec seals every payload with AES-256-GCM under the
// active key and names the key in the payload's metadata, so keys rotate:
// a new key becomes active and the old ones stay to open what they sealed.
// Search attributes are not payloads and stay readable (tenant ids, modes,
// token ids only). The same Codec serves the Temporal Web UI as a codec
// server (Handler), for operators who hold the keys.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/socialproof/verifier/internal/secret"
)

// Metadata of an encrypted payload.
const (
	Encoding       = "binary/encrypted"
	MetadataKeyID  = "encryption-key-id"
	KeySize        = 32 // AES-256
	keyLineComment = "#"
)

// Codec seals and opens payloads. Build it with New or Parse.
type Codec struct {
	active string
	aeads  map[string]cipher.AEAD
}

// Key is one named AES-256 key.
type Key struct {
	ID     string
	Secret []byte
}

// A Key prints, logs and marshals as its id only: the secret bytes never
// reach a log line or an error by accident.
func (k Key) String() string                { return "codec key " + k.ID + " [redacted]" }
func (k Key) GoString() string              { return k.String() }
func (k Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(k.String())) }
func (k Key) MarshalJSON() ([]byte, error)  { return json.Marshal(k.String()) }
func (k Key) LogValue() slog.Value          { return slog.StringValue(k.String()) }

// New makes a codec that seals with keys[0] and opens with any of keys.
func New(keys ...Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no key")
	}
	c := &Codec{active: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if k.ID == "" || strings.ContainsAny(k.ID, " :\n") {
			return nil, fmt.Errorf("codec: key id %q must be non-empty, without spaces or colons", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: key %s is %d bytes, want %d", k.ID, len(k.Secret), KeySize)
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: key id %s twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %s: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
	}
	return c, nil
}

// Parse reads keys as configuration holds them (see ParseKeys) and makes a
// codec of them.
func Parse(text string) (*Codec, error) {
	keys, err := ParseKeys(text)
	if err != nil {
		return nil, err
	}
	return New(keys...)
}

// ParseKeys reads key lines: one per line, "<id>:<base64 of 32 bytes>", the
// first line the active key; blank lines and lines starting with # are
// skipped. It checks the encoding only; New checks ids and sizes. Errors
// never quote a key. Other packages sealing with the same key lines (the
// token vault) parse them here.
func ParseKeys(text string) ([]Key, error) {
	var keys []Key
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, keyLineComment) {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("codec: key line %d is not <id>:<base64 key>", n+1)
		}
		secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("codec: key %s (line %d) is not base64", id, n+1)
		}
		keys = append(keys, Key{ID: strings.TrimSpace(id), Secret: secret})
	}
	return keys, nil
}

// ActiveKey is the id of the key that seals.
func (c *Codec) ActiveKey() string { return c.active }

// Encode seals each payload under the active key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: %w", err)
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), MetadataKeyID: []byte(c.active)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode opens sealed payloads and passes others through (payloads written
// before encryption was turned on).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("codec: payload sealed with key %q, which this codec does not hold", id)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize() {
			return payloads, errors.New("codec: sealed payload too short")
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("codec: payload sealed with key %s does not open: %w", id, err)
		}
		var decoded commonpb.Payload
		if err := proto.Unmarshal(plain, &decoded); err != nil {
			return payloads, fmt.Errorf("codec: %w", err)
		}
		out[i] = &decoded
	}
	return out, nil
}

// DataConverter is Temporal's default converter with payloads sealed by c;
// every client and worker of a deployment must use the same keys.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Handler is a codec server for the Temporal Web UI and CLI
// (POST <prefix>/encode, <prefix>/decode). allowOrigin, when set, is the
// UI's origin, allowed to call it from the browser (CORS).
func (c *Codec) Handler(allowOrigin string) http.Handler {
	h := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowOrigin != "" {
			w.Header().Set("Access-Control-Allow-Origin", allowOrigin)
			w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// FromRef loads keys from a secret reference ("env:NAME" or "file:PATH",
// see internal/secret); an empty reference means payloads are not
// encrypted (nil, nil).
func FromRef(ref string) (*Codec, error) {
	if ref == "" {
		return nil, nil
	}
	v, err := secret.Resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("payload keys: %w", err)
	}
	return Parse(v.Reveal())
}
