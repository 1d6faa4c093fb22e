// Package vault seals the Meta tokens tenants connect, so that the store
// holds them encrypted at rest, by envelope encryption:
//
//   - each token value is sealed with AES-256-GCM under a data key of its
//     own, fresh for every Seal (the ciphertext);
//   - the data key is sealed with AES-256-GCM under a master key (the wrapped
//     key), named by its id; the master keys live outside the database, in
//     key lines of the payload codec's format ("<id>:<base64 of 32 bytes>",
//     the first line active; see codec.ParseKeys), keys of their own.
//
// A dump of the database alone opens nothing. Both seals bind the token's id
// (and the wrapped key also the master key's id) as additional data, so a
// sealed value copied onto another token, or relabelled with another key id,
// does not open.
//
// Rotating the master key rewraps data keys only: the ciphertexts, and the
// token values, never change. Rotation runs without downtime: put the new key
// first and keep the old one after it ([new, old]) in every worker's key
// lines, so that each opens tokens under either key while Rotate rewraps
// them one by one; once Rotate reports nothing left under the old key
// (Missing empty, a second run rewrapping none), the old key can go.
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
)

// dataKeySize is the size of a token's own AES-256 data key.
const dataKeySize = 32

// ErrUnknownKey is returned when a token is sealed under a master key the
// vault does not hold.
var ErrUnknownKey = errors.New("master key not held")

// Vault holds the master keys: the first one (active) seals and rewraps,
// every one opens. Build it with New, Parse or FromRef. A Vault prints and
// logs as its key ids only.
type Vault struct {
	active string
	ids    []string // in the order given, active first
	aeads  map[string]cipher.AEAD
}

// New makes a vault that seals under keys[0] and opens under any of keys.
// Key ids follow the codec's rules: non-empty, without spaces or colons,
// each once; keys are 32 bytes.
func New(keys ...codec.Key) (*Vault, error) {
	if len(keys) == 0 {
		return nil, errors.New("vault: no master key")
	}
	v := &Vault{active: keys[0].ID, aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if k.ID == "" || strings.ContainsAny(k.ID, " :\n") {
			return nil, fmt.Errorf("vault: key id %q must be non-empty, without spaces or colons", k.ID)
		}
		if len(k.Secret) != codec.KeySize {
			return nil, fmt.Errorf("vault: key %s is %d bytes, want %d", k.ID, len(k.Secret), codec.KeySize)
		}
		if _, dup := v.aeads[k.ID]; dup {
			return nil, fmt.Errorf("vault: key id %s twice", k.ID)
		}
		aead, err := newAEAD(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("vault: key %s: %w", k.ID, err)
		}
		v.aeads[k.ID] = aead
		v.ids = append(v.ids, k.ID)
	}
	return v, nil
}

// Parse reads master keys from key lines (codec.ParseKeys): the first line
// is the active key. Errors never quote a key.
func Parse(text string) (*Vault, error) {
	keys, err := codec.ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return New(keys...)
}

// FromRef loads master keys from a secret reference ("env:NAME" or
// "file:PATH", see internal/secret); an empty reference means no vault (nil,
// nil): the deployment connects no tokens.
func FromRef(ref string) (*Vault, error) {
	if ref == "" {
		return nil, nil
	}
	v, err := secret.Resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("vault master keys: %w", err)
	}
	return Parse(v.Reveal())
}

// ActiveKey is the id of the master key that seals and rewraps.
func (v *Vault) ActiveKey() string { return v.active }

// Holds reports whether the vault holds the master key id.
func (v *Vault) Holds(id string) bool {
	_, ok := v.aeads[id]
	return ok
}

// The vault prints, logs and marshals as its key ids: key bytes never reach
// a log line or an error by accident. Value receivers, so that a Vault
// copied out of its pointer prints the same.
func (v Vault) String() string                { return "vault [" + strings.Join(v.ids, " ") + "] active " + v.active }
func (v Vault) GoString() string              { return v.String() }
func (v Vault) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(v.String())) }
func (v Vault) MarshalJSON() ([]byte, error)  { return json.Marshal(v.String()) }
func (v Vault) LogValue() slog.Value          { return slog.StringValue(v.String()) }

// valueAAD binds a ciphertext to its token.
func valueAAD(tokenID string) []byte { return []byte("token:" + tokenID) }

// keyAAD binds a wrapped data key to its token and master key. Key ids hold
// no colon, so the id after the last "key:" is the key's and the rest the
// token's: no two pairs give the same bytes.
func keyAAD(tokenID, keyID string) []byte { return []byte("token:" + tokenID + "|key:" + keyID) }

// Seal encrypts a token's value under a fresh data key, wrapped under the
// active master key. Sealing the same value twice gives different bytes.
func (v *Vault) Seal(tokenID string, value secret.Value) (store.SealedSecret, error) {
	if tokenID == "" {
		return store.SealedSecret{}, errors.New("vault: seal: empty token id")
	}
	if value.Empty() {
		return store.SealedSecret{}, fmt.Errorf("vault: seal token %s: empty value", tokenID)
	}
	dataKey := make([]byte, dataKeySize)
	defer clear(dataKey)
	if _, err := rand.Read(dataKey); err != nil {
		return store.SealedSecret{}, fmt.Errorf("vault: seal token %s: data key: %w", tokenID, err)
	}
	dataAEAD, err := newAEAD(dataKey)
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("vault: seal token %s: %w", tokenID, err)
	}
	plain := []byte(value.Reveal())
	defer clear(plain)
	ciphertext, err := seal(dataAEAD, plain, valueAAD(tokenID))
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("vault: seal token %s: %w", tokenID, err)
	}
	wrapped, err := seal(v.aeads[v.active], dataKey, keyAAD(tokenID, v.active))
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("vault: seal token %s: %w", tokenID, err)
	}
	return store.SealedSecret{Ciphertext: ciphertext, WrappedKey: wrapped, MasterKeyID: v.active}, nil
}

// Open decrypts a token's sealed value. It fails, naming the token and key
// ids only, when the master key is not held (ErrUnknownKey), or when the
// bytes were altered or sealed for another token.
func (v *Vault) Open(tokenID string, s store.SealedSecret) (secret.Value, error) {
	dataKey, err := v.unwrap(tokenID, s)
	if err != nil {
		return secret.Value{}, err
	}
	defer clear(dataKey)
	plain, err := openData(dataKey, tokenID, s.Ciphertext)
	if err != nil {
		return secret.Value{}, err
	}
	defer clear(plain)
	return secret.New(string(plain)), nil
}

// Rewrap wraps the data key of s under the active master key, leaving the
// ciphertext as it is; false (and s) when s is already under it. It checks
// that the ciphertext opens, so a rotation never blesses damaged bytes.
func (v *Vault) Rewrap(tokenID string, s store.SealedSecret) (store.SealedSecret, bool, error) {
	if s.MasterKeyID == v.active {
		return s, false, nil
	}
	dataKey, err := v.unwrap(tokenID, s)
	if err != nil {
		return store.SealedSecret{}, false, err
	}
	defer clear(dataKey)
	plain, err := openData(dataKey, tokenID, s.Ciphertext)
	if err != nil {
		return store.SealedSecret{}, false, err
	}
	clear(plain)
	wrapped, err := seal(v.aeads[v.active], dataKey, keyAAD(tokenID, v.active))
	if err != nil {
		return store.SealedSecret{}, false, fmt.Errorf("vault: rewrap token %s: %w", tokenID, err)
	}
	return store.SealedSecret{Ciphertext: s.Ciphertext, WrappedKey: wrapped, MasterKeyID: v.active}, true, nil
}

// unwrap opens the data key of s.
func (v *Vault) unwrap(tokenID string, s store.SealedSecret) ([]byte, error) {
	master, ok := v.aeads[s.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("vault: token %s is sealed under master key %q: %w", tokenID, s.MasterKeyID, ErrUnknownKey)
	}
	dataKey, err := open(master, s.WrappedKey, keyAAD(tokenID, s.MasterKeyID))
	if err != nil || len(dataKey) != dataKeySize {
		clear(dataKey)
		return nil, fmt.Errorf("vault: token %s: data key does not open under master key %s (altered, or sealed for another token)", tokenID, s.MasterKeyID)
	}
	return dataKey, nil
}

// openData opens a token's ciphertext with its data key.
func openData(dataKey []byte, tokenID string, ciphertext []byte) ([]byte, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, fmt.Errorf("vault: token %s: %w", tokenID, err)
	}
	plain, err := open(aead, ciphertext, valueAAD(tokenID))
	if err != nil {
		return nil, fmt.Errorf("vault: token %s: value does not open (altered, or sealed for another token)", tokenID)
	}
	return plain, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns nonce || AES-GCM(plain).
func seal(aead cipher.AEAD, plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, aad), nil
}

// open reverses seal.
func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], aad)
}

// RotateResult reports a rotation.
type RotateResult struct {
	Rewrapped int // sealed tokens rewrapped under the active key now
	Already   int // sealed tokens found under the active key already
	// Missing: tokens sealed under a master key the vault does not hold, by
	// id; they stay as they are (and unreadable to this vault).
	Missing []string
}

// Rotate rewraps every sealed token of st that is not under v's active key.
// Each rewrap is a compare-and-set (store.RewrapToken): when the token
// changed meanwhile (another rotation, or the tenant reconnected it, maybe
// through a worker still sealing under the old key) Rotate reads it again
// and retries once, so a concurrent reconnect is never overwritten by the
// old data key. Rotate goes on past a token it cannot rewrap (damaged, or
// changing again) and returns the result with every such token's error
// joined; running it again is harmless. Reference tokens are not counted.
func Rotate(ctx context.Context, st store.Store, v *Vault) (RotateResult, error) {
	var res RotateResult
	if v == nil {
		return res, errors.New("rotate: no vault")
	}
	tokens, err := st.Tokens(ctx)
	if err != nil {
		return res, fmt.Errorf("rotate: %w", err)
	}
	var errs []error
	for _, t := range tokens {
		if err := ctx.Err(); err != nil {
			return res, errors.Join(append(errs, fmt.Errorf("rotate: %w", err))...)
		}
		if err := rotateOne(ctx, st, v, t, &res); err != nil {
			errs = append(errs, fmt.Errorf("rotate: %w", err))
		}
	}
	return res, errors.Join(errs...)
}

// rotateOne rewraps one token, re-reading it once when the compare-and-set
// finds it changed.
func rotateOne(ctx context.Context, st store.Store, v *Vault, t store.Token, res *RotateResult) error {
	for attempt := 0; ; attempt++ {
		switch {
		case t.Sealed == nil:
			return nil // a reference token (maybe reconnected as one)
		case t.Sealed.MasterKeyID == v.active:
			res.Already++
			return nil
		case !v.Holds(t.Sealed.MasterKeyID):
			res.Missing = append(res.Missing, t.ID)
			return nil
		}
		to, _, err := v.Rewrap(t.ID, *t.Sealed)
		if err != nil {
			return err
		}
		ok, err := st.RewrapToken(ctx, t.ID, t.Sealed.MasterKeyID, to)
		if err != nil {
			return err
		}
		if ok {
			res.Rewrapped++
			return nil
		}
		if attempt == 1 {
			return fmt.Errorf("token %s changed twice during rotation; run it again", t.ID)
		}
		t, err = st.Token(ctx, t.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile: nothing to rewrap
		}
		if err != nil {
			return err
		}
	}
}
