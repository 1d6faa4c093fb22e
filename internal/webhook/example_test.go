package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/webhook"
)

// Meta signs every delivery with the app secret: the X-Hub-Signature-256
// header is "sha256=" followed by the lowercase hex HMAC-SHA256 of the raw
// request body (the bytes as sent, never re-encoded JSON), keyed by the app
// secret. webhook.Sign computes the same value, for tests and simulators.
func ExampleSign() {
	appSecret := "my-app-secret"
	body := []byte(`{"object":"page","entry":[]}`)

	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	header := "sha256=" + hex.EncodeToString(m.Sum(nil))

	fmt.Println(header)
	fmt.Println(header == webhook.Sign(secret.New(appSecret), body))
	// Output:
	// sha256=efc6622a1e514411b7569a0f5886d4706df142ebfc80ed1e84dba7b7b5593e02
	// true
}
