package vault_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the raw reads

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/internal/vault"
)

type sealedSecret = store.SealedSecret

// forEachBackend runs test once per store backend, each with a fresh store.
func forEachBackend(t *testing.T, test func(t *testing.T, backend string, st store.Store, dsn string)) {
	for _, backend := range []string{testenv.SQLite, testenv.Postgres} {
		t.Run(backend, func(t *testing.T) {
			st, dsn := testenv.OpenStore(t, backend)
			test(t, backend, st, dsn)
		})
	}
}

// connectSealed seals value for id under v and connects it for tenant
// (created if missing).
func connectSealed(t *testing.T, st store.Store, v *vault.Vault, id, tenant, value string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.Tenant(ctx, tenant); errors.Is(err, store.ErrNotFound) {
		if err := st.UpsertTenant(ctx, store.Tenant{ID: tenant, Tier: store.TierPremium}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := v.Seal(id, secret.New(value))
	if err != nil {
		t.Fatal(err)
	}
	err = st.ConnectToken(ctx, store.Token{ID: id, Tenant: tenant, BudgetCalls: 200, BudgetWindow: "1h", Sealed: &s,
		Health: store.TokenHealth{State: store.TokenHealthy, Scopes: []string{"instagram_basic"}, Type: "USER", MetaUserID: "u-" + id}})
	if err != nil {
		t.Fatalf("ConnectToken(%s): %v", id, err)
	}
}

// sealedTokens reads every sealed token of st by id.
func sealedTokens(t *testing.T, st store.Store) map[string]sealedSecret {
	t.Helper()
	tokens, err := st.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]sealedSecret{}
	for _, tok := range tokens {
		if tok.Sealed != nil {
			out[tok.ID] = *tok.Sealed
		}
	}
	return out
}

// wantOpens checks that v opens each of want's tokens in st to its value.
func wantOpens(t *testing.T, st store.Store, v *vault.Vault, want map[string]string) {
	t.Helper()
	sealed := sealedTokens(t, st)
	for id, value := range want {
		s, ok := sealed[id]
		if !ok {
			t.Errorf("%v: token %s is not sealed in the store", v, id)
			continue
		}
		got, err := v.Open(id, s)
		if err != nil {
			t.Errorf("%v: Open(%s): %v", v, id, err)
		} else if got.Reveal() != value {
			t.Errorf("%v: Open(%s) is not the value connected", v, id)
		}
	}
}

func resultString(r vault.RotateResult) string {
	return fmt.Sprintf("rewrapped=%d already=%d missing=%v", r.Rewrapped, r.Already, r.Missing)
}

func rotate(t *testing.T, st store.Store, v *vault.Vault) vault.RotateResult {
	t.Helper()
	res, err := vault.Rotate(context.Background(), st, v)
	if err != nil {
		t.Fatalf("Rotate(%v): %v", v, err)
	}
	return res
}

// Seal under k1; a vault [k2 k1] opens every token before, during and after
// the rotation and rotates them all; then [k2] alone opens every token.
func TestRotate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string, st store.Store, dsn string) {
		ctx := context.Background()
		k0, k1, k2 := newKey(t, "k0"), newKey(t, "k1"), newKey(t, "k2")
		v1, v21, v2 := newVault(t, k1), newVault(t, k2, k1), newVault(t, k2)
		values := map[string]string{}
		for _, id := range []string{"acme-ig", "beta-ig", "zeta-page"} {
			values[id] = tokenValue(t)
			connectSealed(t, st, v1, id, strings.Split(id, "-")[0], values[id])
		}
		// Sealed under a key long gone: reported, left alone.
		connectSealed(t, st, newVault(t, k0), "lost-ig", "lost", tokenValue(t))
		// Reference tokens and the app row are no business of the vault.
		for _, tok := range []store.Token{
			{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:FILE_TOKEN"},
			{ID: store.AppTokenID, BudgetWindow: "1h"},
		} {
			if err := st.UpsertToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		before := sealedTokens(t, st)

		// Before the rotation the new key alone opens nothing.
		if _, err := v2.Open("acme-ig", before["acme-ig"]); !errors.Is(err, vault.ErrUnknownKey) || !strings.Contains(err.Error(), "k1") {
			t.Errorf("[k2] before the rotation: %v, want ErrUnknownKey naming k1", err)
		}
		wantOpens(t, st, v21, values)

		// Midway (one token rewrapped by hand), workers on [k2 k1] still
		// open everything.
		r, _, err := v21.Rewrap("beta-ig", before["beta-ig"])
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := st.RewrapToken(ctx, "beta-ig", "k1", r); err != nil || !ok {
			t.Fatalf("RewrapToken(beta-ig) = %v, %v", ok, err)
		}
		wantOpens(t, st, v21, values)

		if got, want := resultString(rotate(t, st, v21)), "rewrapped=2 already=1 missing=[lost-ig]"; got != want {
			t.Errorf("Rotate: %s, want %s", got, want)
		}
		wantOpens(t, st, v21, values)
		wantOpens(t, st, v2, values)
		after := sealedTokens(t, st)
		for id := range values {
			if after[id].MasterKeyID != "k2" || !bytes.Equal(after[id].Ciphertext, before[id].Ciphertext) {
				t.Errorf("%s after the rotation: key %s, ciphertext unchanged %v; want k2, unchanged",
					id, after[id].MasterKeyID, bytes.Equal(after[id].Ciphertext, before[id].Ciphertext))
			}
		}
		if got := after["lost-ig"]; got.MasterKeyID != "k0" || !bytes.Equal(got.WrappedKey, before["lost-ig"].WrappedKey) {
			t.Errorf("lost-ig changed: key %s", got.MasterKeyID)
		}
		// A second run has nothing to do.
		if got, want := resultString(rotate(t, st, v21)), "rewrapped=0 already=3 missing=[lost-ig]"; got != want {
			t.Errorf("Rotate again: %s, want %s", got, want)
		}
		// Health and the rest of each row are the rotation's to leave alone.
		for id := range values {
			tok, err := st.Token(ctx, id)
			if err != nil || tok.Health.State != store.TokenHealthy || tok.Health.MetaUserID != "u-"+id || tok.Tenant != strings.Split(id, "-")[0] {
				t.Errorf("%s after the rotation: %+v, %v", id, tok.Health, err)
			}
		}
		if _, err := vault.Rotate(ctx, st, nil); err == nil {
			t.Error("Rotate without a vault succeeded")
		}
	})
}

// racingStore lets a test act between Rotate's read of a token and its
// compare-and-set: the moment a concurrent writer could slip in.
type racingStore struct {
	store.Store
	before func(id string) // runs before each RewrapToken
}

func (r *racingStore) RewrapToken(ctx context.Context, id, from string, to store.SealedSecret) (bool, error) {
	if r.before != nil {
		r.before(id)
	}
	return r.Store.RewrapToken(ctx, id, from, to)
}

// A token that changes between Rotate's read and its write is read again:
// a reconnect is never overwritten by the old data key.
func TestRotateDoesNotClobberConcurrentChange(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	v1, v21, v2 := newVault(t, k1), newVault(t, k2, k1), newVault(t, k2)
	tests := []struct {
		name      string
		change    func(t *testing.T, st store.Store, id, value string) // the concurrent writer
		reconnect bool                                                 // whether change connects a new value
		want      string
	}{
		{"reconnected by a worker still on [k1]", func(t *testing.T, st store.Store, id, value string) {
			connectSealed(t, st, v1, id, "acme", value)
		}, true, "rewrapped=1 already=0 missing=[]"},
		{"reconnected by a worker on [k2 k1]", func(t *testing.T, st store.Store, id, value string) {
			connectSealed(t, st, v21, id, "acme", value)
		}, true, "rewrapped=0 already=1 missing=[]"},
		{"rotated by another Rotate", func(t *testing.T, st store.Store, id, _ string) {
			if res, err := vault.Rotate(context.Background(), st, v21); err != nil || res.Rewrapped != 1 {
				t.Errorf("the other Rotate: %s, %v", resultString(res), err)
			}
		}, false, "rewrapped=0 already=1 missing=[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, backend string, st store.Store, dsn string) {
				first, second := tokenValue(t), tokenValue(t)
				connectSealed(t, st, v1, "acme-ig", "acme", first)
				fired := false
				racing := &racingStore{Store: st, before: func(id string) {
					if id == "acme-ig" && !fired {
						fired = true
						tt.change(t, st, id, second)
					}
				}}
				res, err := vault.Rotate(context.Background(), racing, v21)
				if err != nil {
					t.Fatalf("Rotate: %v", err)
				}
				if !fired {
					t.Fatal("the concurrent change never ran")
				}
				if got := resultString(res); got != tt.want {
					t.Errorf("Rotate %s, want %s", got, tt.want)
				}
				want := first
				if tt.reconnect {
					want = second
				}
				wantOpens(t, st, v2, map[string]string{"acme-ig": want})
			})
		})
	}
}

// A token changing again after the re-read is left for the next run, and
// reported; the other tokens rotate.
func TestRotateReportsATokenChangingTwice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string, st store.Store, dsn string) {
		k1, k2 := newKey(t, "k1"), newKey(t, "k2")
		v1, v21 := newVault(t, k1), newVault(t, k2, k1)
		values := map[string]string{"acme-ig": tokenValue(t), "zeta-ig": tokenValue(t)}
		for id, value := range values {
			connectSealed(t, st, v1, id, strings.Split(id, "-")[0], value)
		}
		racing := &racingStore{Store: st, before: func(id string) {
			if id == "acme-ig" {
				values[id] = tokenValue(t)
				connectSealed(t, st, v1, id, "acme", values[id]) // a worker still on [k1]
			}
		}}
		res, err := vault.Rotate(context.Background(), racing, v21)
		if err == nil || !strings.Contains(err.Error(), "acme-ig") {
			t.Errorf("Rotate: %v, want an error naming acme-ig", err)
		}
		if got := resultString(res); got != "rewrapped=1 already=0 missing=[]" {
			t.Errorf("Rotate: %s, want zeta-ig rewrapped", got)
		}
		// The next run, undisturbed, finishes the job.
		if got := resultString(rotate(t, st, v21)); got != "rewrapped=1 already=1 missing=[]" {
			t.Errorf("Rotate again: %s", got)
		}
		wantOpens(t, st, newVault(t, k2), values)
	})
}

// leakIn returns which form of a secret a stored cell holds: the secret in
// clear (whole, or a 24-byte window of it), or hex- or base64-encoded.
func leakIn(cell string, secrets [][]byte) string {
	lower := strings.ToLower(cell)
	for _, s := range secrets {
		for _, e := range encodings(s) {
			if strings.Contains(cell, e) {
				return "encoded"
			}
		}
		if strings.Contains(lower, hex.EncodeToString(s)) {
			return "hex"
		}
		for i := 0; i+24 <= len(s); i += 12 {
			if strings.Contains(cell, string(s[i:i+24])) {
				return "clear window"
			}
		}
	}
	return ""
}

// rawCells reads every column of every row of tokens with plain SQL, both
// as the driver returns it (bytes, text, numbers, times) and cast to text,
// as "id.column=value" strings.
func rawCells(t *testing.T, raw *sql.DB) (cells []string, rowCount int, columns []string) {
	t.Helper()
	rows, err := raw.Query(`SELECT * FROM tokens ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	columns, err = rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		values := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range values {
			ptrs[i] = &values[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		rowCount++
		for i, v := range values {
			var text string
			switch v := v.(type) {
			case []byte:
				text = string(v)
			case string:
				text = v
			case nil:
				text = ""
			default:
				text = fmt.Sprint(v)
			}
			cells = append(cells, fmt.Sprintf("%v.%s=%s", values[0], columns[i], text))
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, col := range columns {
		crows, err := raw.Query(`SELECT id, CAST(` + col + ` AS TEXT) FROM tokens ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		for crows.Next() {
			var id string
			var text sql.NullString
			if err := crows.Scan(&id, &text); err != nil {
				t.Fatal(err)
			}
			cells = append(cells, fmt.Sprintf("%s.%s as text=%s", id, col, text.String))
		}
		if err := crows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return cells, rowCount, columns
}

// No column of tokens holds a connected token's value, or a master key, in
// clear or hex- or base64-encoded: not after connecting, not after a
// rotation. The controls plant each form and see it found.
func TestRawRowsHoldNoTokenValue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string, st store.Store, dsn string) {
		ctx := context.Background()
		k1, k2 := newKey(t, "k1"), newKey(t, "k2")
		values := map[string]string{"acme-ig": tokenValue(t), "acme-page": tokenValue(t), "zeta-ig": tokenValue(t)}
		for id, value := range values {
			connectSealed(t, st, newVault(t, k1), id, strings.Split(id, "-")[0], value)
		}
		if err := st.UpsertToken(ctx, store.Token{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:FILE_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		if err := st.MarkTokenState(ctx, store.TokenMark{ID: "acme-page", State: store.TokenInvalid, Reason: "graph error 190", At: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
		secrets := [][]byte{k1.Secret, k2.Secret}
		for _, v := range values {
			secrets = append(secrets, []byte(v))
		}

		driver, rawDSN := "pgx", dsn
		if backend == testenv.SQLite {
			driver, rawDSN = "sqlite", strings.TrimPrefix(dsn, "sqlite:")
		}
		raw, err := sql.Open(driver, rawDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()

		check := func(when string) {
			t.Helper()
			cells, n, columns := rawCells(t, raw)
			if n != 4 || len(columns) != 18 || !slices.Contains(columns, "sealed_value") || !slices.Contains(columns, "wrapped_key") {
				t.Fatalf("%s: read %d rows of %d columns %v; want 4 rows of the 18 columns of 00008", when, n, len(columns), columns)
			}
			sealedCells := 0
			for _, c := range cells {
				if strings.Contains(c, ".sealed_value=") && len(c) > len("acme-ig.sealed_value=")+40 {
					sealedCells++
				}
				if leak := leakIn(c, secrets); leak != "" {
					t.Errorf("%s: %s holds a secret (%s)", when, strings.SplitN(c, "=", 2)[0], leak)
				}
			}
			if sealedCells != 3 {
				t.Errorf("%s: %d non-empty sealed_value cells, want 3: the scan did not see the ciphertexts", when, sealedCells)
			}
		}
		check("after connecting")
		if res, err := vault.Rotate(ctx, st, newVault(t, k2, k1)); err != nil || res.Rewrapped != 3 {
			t.Fatalf("Rotate: %s, %v", resultString(res), err)
		}
		check("after rotating")
		wantOpens(t, st, newVault(t, k2), values)

		// The controls: each form of a leak, planted, is found.
		leaked := []byte(values["zeta-ig"])
		for _, plant := range []struct{ form, text string }{
			{"clear", string(leaked)},
			{"clear window", "Bearer " + string(leaked[30:90])},
			{"std base64", base64.StdEncoding.EncodeToString(leaked)},
			{"url base64", base64.RawURLEncoding.EncodeToString(leaked)},
			{"hex", hex.EncodeToString(leaked)},
			{"HEX", strings.ToUpper(hex.EncodeToString(leaked))},
			{"master key, base64", base64.StdEncoding.EncodeToString(k2.Secret)},
		} {
			if _, err := raw.Exec(rebind(backend, `UPDATE tokens SET state_reason = ? WHERE id = 'file-token'`), plant.text); err != nil {
				t.Fatal(err)
			}
			cells, _, _ := rawCells(t, raw)
			found := false
			for _, c := range cells {
				found = found || leakIn(c, secrets) != ""
			}
			if !found {
				t.Errorf("control: a %s leak planted in state_reason is not found", plant.form)
			}
		}
		// A value planted in sealed_value itself (BLOB/BYTEA, read as bytes
		// and cast to text) is found too.
		if _, err := raw.Exec(rebind(backend, `UPDATE tokens SET state_reason = '', sealed_value = ? WHERE id = 'acme-ig'`), append([]byte{0, 1}, leaked...)); err != nil {
			t.Fatal(err)
		}
		cells, _, _ := rawCells(t, raw)
		found := false
		for _, c := range cells {
			found = found || (strings.HasPrefix(c, "acme-ig.sealed_value") && leakIn(c, secrets) != "")
		}
		if !found {
			t.Error("control: a value planted in sealed_value is not found")
		}
	})
}

func rebind(backend, query string) string {
	if backend == testenv.Postgres {
		return strings.ReplaceAll(query, "?", "$1")
	}
	return query
}

// keyLine is a key as configuration holds it.
func keyLine(k codec.Key) string { return k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret) }

// Workers built from key lines, as deployments configure them, rotate
// without downtime: the new key added first, the old kept until Rotate is
// done, then removed.
func TestRotateWithKeyLines(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string, st store.Store, dsn string) {
		k1, k2 := newKey(t, "2026-01"), newKey(t, "2026-11")
		parse := func(lines ...string) *vault.Vault {
			t.Helper()
			v, err := vault.Parse(strings.Join(lines, "\n"))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		values := map[string]string{"acme-ig": tokenValue(t)}
		connectSealed(t, st, parse(keyLine(k1)), "acme-ig", "acme", values["acme-ig"])
		during := parse("# new key first, old kept", keyLine(k2), keyLine(k1))
		wantOpens(t, st, during, values)
		if got := resultString(rotate(t, st, during)); got != "rewrapped=1 already=0 missing=[]" {
			t.Errorf("Rotate: %s", got)
		}
		wantOpens(t, st, parse(keyLine(k2)), values)
	})
}
