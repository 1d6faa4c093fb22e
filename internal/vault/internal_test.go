package vault

import (
	"crypto/rand"
	"testing"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/secret"
)

// The ciphertext binds its token id on its own, not only through the
// wrapped key: even with the right data key in hand, another token's id
// does not open it.
func TestCiphertextBoundToToken(t *testing.T) {
	k := codec.Key{ID: "k1", Secret: make([]byte, codec.KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		t.Fatal(err)
	}
	v, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	s, err := v.Seal("acme-ig", secret.New("EAABvalue"))
	if err != nil {
		t.Fatal(err)
	}
	dataKey, err := v.unwrap("acme-ig", s)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := openData(dataKey, "acme-ig", s.Ciphertext); err != nil || string(plain) != "EAABvalue" {
		t.Fatalf("openData with its own id: %v", err)
	}
	if _, err := openData(dataKey, "zeta-ig", s.Ciphertext); err == nil {
		t.Error("the ciphertext opens for another token id with the right data key")
	}
}
