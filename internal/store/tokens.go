package store

// Tokens: Meta access tokens, by reference (the tenants file) or connected
// and sealed, and what their checks found.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Token is a Meta access token. The store never holds a token's value in
// clear: a token from the tenants file is known by reference (SecretRef
// names where it lives, "env:NAME" or "file:PATH"); a token a tenant
// connected through the API is held sealed by internal/vault (Sealed), which
// only a process holding the master keys can open.
type Token struct {
	ID           string   `json:"id"`
	Accounts     []string `json:"accounts"` // account ids this token can read
	BudgetCalls  int      `json:"budget_calls"`
	BudgetWindow string   `json:"budget_window"` // "1h" (app/user tokens) or "24h" (BUC: Page and IG account tokens)
	SecretRef    string   `json:"secret_ref"`    // "" for connected tokens and the app token's row

	// Tenant is the tenant that connected the token; "" for tokens from the
	// tenants file.
	Tenant      string        `json:"tenant,omitempty"`
	Sealed      *SealedSecret `json:"-"` // nil for reference tokens
	ConnectedAt time.Time     `json:"connected_at,omitzero"`
	Health      TokenHealth   `json:"health"`
}

// AppTokenID is the app access token's row: it has no secret of its own (the
// worker builds "<app id>|<app secret>"), only a budget for its limiter.
const AppTokenID = "app"

// TokenState is what the last check of a token found.
type TokenState string

const (
	TokenUnknown       TokenState = "unknown" // never checked
	TokenHealthy       TokenState = "healthy"
	TokenExpiring      TokenState = "expiring" // valid, but expires soon
	TokenMissingScopes TokenState = "missing_scopes"
	TokenInvalid       TokenState = "invalid" // Meta refuses it (expired, password changed, ...)
	// TokenRevoked: the user took the app's access away (deauthorization
	// callback, or Meta said so). It sticks until the tenant connects a new
	// token: see Store.SetTokenHealth.
	TokenRevoked TokenState = "revoked"
)

// Valid reports whether s is one of the six states.
func (s TokenState) Valid() bool {
	switch s {
	case TokenUnknown, TokenHealthy, TokenExpiring, TokenMissingScopes, TokenInvalid, TokenRevoked:
		return true
	}
	return false
}

// TokenHealth is what the last check of a token (Meta's debug_token) found.
type TokenHealth struct {
	State               TokenState `json:"state"`
	Reason              string     `json:"reason,omitempty"`
	CheckedAt           time.Time  `json:"checked_at,omitzero"`             // our clock
	ExpiresAt           time.Time  `json:"expires_at,omitzero"`             // Meta's clock; zero: never
	DataAccessExpiresAt time.Time  `json:"data_access_expires_at,omitzero"` // Meta's clock
	Scopes              []string   `json:"scopes"`
	Type                string     `json:"type,omitempty"`         // USER, PAGE, SYSTEM_USER
	MetaUserID          string     `json:"meta_user_id,omitempty"` // debug_token's user_id, named by Meta's deauthorization callback
}

// TokenMark is a state Store.MarkTokenState records for a token, found
// outside a check.
type TokenMark struct {
	// ID is the token's id.
	ID string
	// State is the state found; one of the six (TokenState.Valid).
	State TokenState
	// Reason says why, for operators (TokenHealth.Reason).
	Reason string
	// At is when it was found: the token's new TokenHealth.CheckedAt.
	At time.Time
}

// ExpiresFirst is when the token stops working: the sooner of ExpiresAt
// and DataAccessExpiresAt (Meta's clock); zero when neither is set.
func (h TokenHealth) ExpiresFirst() time.Time {
	at := h.ExpiresAt
	if d := h.DataAccessExpiresAt; !d.IsZero() && (at.IsZero() || d.Before(at)) {
		at = d
	}
	return at
}

// SealedSecret is a token value encrypted by internal/vault (envelope): the
// value sealed under a data key of its own (Ciphertext), the data key
// sealed under the master key MasterKeyID (WrappedKey). Rotating master
// keys rewraps the data key and leaves Ciphertext as it is.
type SealedSecret struct {
	Ciphertext  []byte
	WrappedKey  []byte
	MasterKeyID string
}

// complete reports whether every part is set.
func (s *SealedSecret) complete() bool {
	return s != nil && len(s.Ciphertext) > 0 && len(s.WrappedKey) > 0 && s.MasterKeyID != ""
}

// TokenTenants maps each token id to its tenant: the one that connected it
// (Token.Tenant), else the one the tenants file gives it (Tenant.TokenID).
// The platform and app tokens, no tenant's own, are absent.
func TokenTenants(tokens []Token, tenants []Tenant) map[string]string {
	owners := map[string]string{}
	for _, tn := range tenants {
		if tn.TokenID != "" {
			owners[tn.TokenID] = tn.ID
		}
	}
	for _, t := range tokens {
		if t.Tenant != "" {
			owners[t.ID] = t.Tenant
		}
	}
	return owners
}

// validSecretRef reports whether ref names where a secret lives rather than
// being one.
func validSecretRef(ref string) bool {
	return (strings.HasPrefix(ref, "env:") && len(ref) > len("env:")) ||
		(strings.HasPrefix(ref, "file:") && len(ref) > len("file:"))
}

func (s *sqlStore) UpsertToken(ctx context.Context, t Token) error {
	if t.ID == "" {
		return errors.New("upsert token: empty id")
	}
	var secretRef any = t.SecretRef
	switch {
	case t.ID == AppTokenID && t.SecretRef == "":
		// The app token is built from the app id and secret: its row holds
		// only a budget.
		secretRef = nil
	case !validSecretRef(t.SecretRef):
		// Never echo the refused value: it may be the token itself.
		return fmt.Errorf(`upsert token %s: secret_ref must be "env:NAME" or "file:PATH", not a token value`, t.ID)
	}
	if err := checkBudgetWindow(t); err != nil {
		return fmt.Errorf("upsert token %s: %w", t.ID, err)
	}
	accountsJSON, err := tokenAccountsJSON(t)
	if err != nil {
		return fmt.Errorf("upsert token %s: %w", t.ID, err)
	}
	// Only the reference's columns: a connected token's tenant, sealed value
	// and health are ConnectToken's and SetTokenHealth's to write.
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO tokens (id, accounts, budget_calls, budget_window, secret_ref) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET accounts = excluded.accounts, budget_calls = excluded.budget_calls,
				budget_window = excluded.budget_window, secret_ref = excluded.secret_ref`),
			t.ID, accountsJSON, t.BudgetCalls, t.BudgetWindow, secretRef)
		return err
	})
	if err != nil {
		return fmt.Errorf("upsert token %s: %w", t.ID, err)
	}
	return nil
}

func checkBudgetWindow(t Token) error {
	if t.BudgetWindow != "1h" && t.BudgetWindow != "24h" {
		return fmt.Errorf(`budget_window %q is neither "1h" nor "24h"`, t.BudgetWindow)
	}
	return nil
}

func tokenAccountsJSON(t Token) (string, error) {
	accounts := t.Accounts
	if accounts == nil {
		accounts = []string{}
	}
	b, err := json.Marshal(accounts)
	if err != nil {
		return "", fmt.Errorf("encode accounts: %w", err)
	}
	return string(b), nil
}

func scopesJSON(scopes []string) (string, error) {
	if scopes == nil {
		scopes = []string{}
	}
	b, err := json.Marshal(scopes)
	if err != nil {
		return "", fmt.Errorf("encode scopes: %w", err)
	}
	return string(b), nil
}

func (s *sqlStore) ConnectToken(ctx context.Context, t Token) error {
	// No message here quotes t.Sealed: a token's ciphertext is no secret
	// without the master key, but it has no business in logs either.
	switch {
	case t.ID == "":
		return errors.New("connect token: empty id")
	case t.ID == AppTokenID:
		return fmt.Errorf("connect token %s: the app token's row is not a tenant's to connect", t.ID)
	case t.Tenant == "":
		return fmt.Errorf("connect token %s: no tenant", t.ID)
	case t.SecretRef != "":
		// Never echo it: a caller mixing the two may have put the value here.
		return fmt.Errorf("connect token %s: a connected token has a sealed value, not a secret_ref", t.ID)
	case !t.Sealed.complete():
		return fmt.Errorf("connect token %s: the sealed value needs its ciphertext, wrapped key and master key id", t.ID)
	}
	if err := checkBudgetWindow(t); err != nil {
		return fmt.Errorf("connect token %s: %w", t.ID, err)
	}
	h := t.Health
	if h.State == "" {
		h.State = TokenUnknown
	}
	if !h.State.Valid() {
		return fmt.Errorf("connect token %s: unknown state %q", t.ID, h.State)
	}
	accountsJSON, err := tokenAccountsJSON(t)
	if err != nil {
		return fmt.Errorf("connect token %s: %w", t.ID, err)
	}
	scopes, err := scopesJSON(h.Scopes)
	if err != nil {
		return fmt.Errorf("connect token %s: %w", t.ID, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// Whether the tenant used this token already (the tenants file gave
		// it): then its connection may replace that file token.
		var current sql.NullString
		err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT token_id FROM tenants WHERE id = ?`+s.d.rowLock), t.Tenant).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("tenant %s: %w", t.Tenant, ErrNotFound)
		}
		if err != nil {
			return withoutRowData(err)
		}
		ownFileToken := 0
		if current.Valid && current.String == t.ID {
			ownFileToken = 1
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE tenants SET token_id = ? WHERE id = ?`), t.ID, t.Tenant); err != nil {
			return withoutRowData(err)
		}
		// The upsert's WHERE makes the ownership check and the write one
		// statement: a concurrent connection of the same id by another
		// tenant cannot slip in between. The row must be the tenant's own
		// connection, or a token of the tenants file (NULL tenant_id) that
		// this tenant used and no other tenant does: connecting replaces a
		// tenant's configured token, never another's or the platform's.
		res, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO tokens (id, accounts, budget_calls, budget_window, secret_ref,
				tenant_id, connected_at, sealed_value, wrapped_key, master_key_id,
				state, state_reason, checked_at, expires_at, data_access_expires_at, scopes, token_type, meta_user_id)
			VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET accounts = excluded.accounts, budget_calls = excluded.budget_calls,
				budget_window = excluded.budget_window, secret_ref = NULL,
				tenant_id = excluded.tenant_id, connected_at = excluded.connected_at,
				sealed_value = excluded.sealed_value, wrapped_key = excluded.wrapped_key, master_key_id = excluded.master_key_id,
				state = excluded.state, state_reason = excluded.state_reason, checked_at = excluded.checked_at,
				expires_at = excluded.expires_at, data_access_expires_at = excluded.data_access_expires_at,
				scopes = excluded.scopes, token_type = excluded.token_type, meta_user_id = excluded.meta_user_id
			WHERE tokens.tenant_id = excluded.tenant_id
				OR (tokens.tenant_id IS NULL AND ? = 1 AND NOT EXISTS (
					SELECT 1 FROM tenants o WHERE o.token_id = tokens.id AND o.id <> excluded.tenant_id))`),
			t.ID, accountsJSON, t.BudgetCalls, t.BudgetWindow,
			t.Tenant, s.d.timeArg(t.ConnectedAt), t.Sealed.Ciphertext, t.Sealed.WrappedKey, t.Sealed.MasterKeyID,
			string(h.State), h.Reason, s.d.timeArg(h.CheckedAt), s.d.timeArg(h.ExpiresAt), s.d.timeArg(h.DataAccessExpiresAt),
			scopes, h.Type, h.MetaUserID, ownFileToken)
		if err != nil {
			return withoutRowData(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrTokenTaken
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("connect token %s for tenant %s: %w", t.ID, t.Tenant, err)
	}
	return nil
}

// withoutRowData drops what a PostgreSQL error carries besides its message
// and code: a constraint violation's detail quotes the failing row, sealed
// bytes included, for anyone who unwraps it (errors.As) and logs it.
// SQLite's messages name the constraint only.
func withoutRowData(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	return err
}

func (s *sqlStore) SetTokenHealth(ctx context.Context, id string, h TokenHealth) error {
	if !h.State.Valid() {
		return fmt.Errorf("set token %s health: unknown state %q", id, h.State)
	}
	scopes, err := scopesJSON(h.Scopes)
	if err != nil {
		return fmt.Errorf("set token %s health: %w", id, err)
	}
	// A revoked token keeps its state and reason: see the Store interface.
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE tokens SET
			state = CASE WHEN state = 'revoked' THEN state ELSE ? END,
			state_reason = CASE WHEN state = 'revoked' THEN state_reason ELSE ? END,
			checked_at = ?, expires_at = ?, data_access_expires_at = ?, scopes = ?, token_type = ?, meta_user_id = ?
		WHERE id = ?`),
		string(h.State), h.Reason, s.d.timeArg(h.CheckedAt), s.d.timeArg(h.ExpiresAt), s.d.timeArg(h.DataAccessExpiresAt),
		scopes, h.Type, h.MetaUserID, id)
	if err != nil {
		return fmt.Errorf("set token %s health: %w", id, withoutRowData(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set token %s health: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("set token %s health: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) MarkTokenState(ctx context.Context, m TokenMark) error {
	id, state, reason, at := m.ID, m.State, m.Reason, m.At
	if !state.Valid() {
		return fmt.Errorf("mark token %s: unknown state %q", id, state)
	}
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE tokens SET
			state = CASE WHEN state = 'revoked' THEN state ELSE ? END,
			state_reason = CASE WHEN state = 'revoked' THEN state_reason ELSE ? END,
			checked_at = ?
		WHERE id = ?`),
		string(state), reason, s.d.timeArg(at), id)
	if err != nil {
		return fmt.Errorf("mark token %s %s: %w", id, state, withoutRowData(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mark token %s %s: %w", id, state, err)
	} else if n == 0 {
		return fmt.Errorf("mark token %s %s: %w", id, state, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) TokensByMetaUser(ctx context.Context, metaUserID string) ([]Token, error) {
	if metaUserID == "" {
		return nil, errors.New("tokens by meta user: empty user id")
	}
	tokens, err := s.queryTokens(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE meta_user_id = ?`, metaUserID)
	if err != nil {
		return nil, fmt.Errorf("tokens of meta user %s: %w", metaUserID, err)
	}
	return tokens, nil
}

func (s *sqlStore) RewrapToken(ctx context.Context, id string, fromKeyID string, to SealedSecret) (bool, error) {
	if !to.complete() || fromKeyID == "" {
		return false, fmt.Errorf("rewrap token %s: the from key id and the new ciphertext, wrapped key and master key id are required", id)
	}
	res, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE tokens SET wrapped_key = ?, master_key_id = ?
		WHERE id = ? AND master_key_id = ? AND sealed_value = ?`),
		to.WrappedKey, to.MasterKeyID, id, fromKeyID, to.Ciphertext)
	if err != nil {
		return false, fmt.Errorf("rewrap token %s: %w", id, withoutRowData(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("rewrap token %s: %w", id, err)
	}
	return n > 0, nil
}

const tokenColumns = `id, accounts, budget_calls, budget_window, secret_ref, tenant_id, connected_at,
	sealed_value, wrapped_key, master_key_id, state, state_reason, checked_at, expires_at, data_access_expires_at,
	scopes, token_type, meta_user_id`

// scanToken reads a token row. Undecodable accounts or scopes JSON leaves
// them empty and is reported as badJSON, for the caller to decide (see
// scanTenant).
func scanToken(row scanner) (t Token, badJSON error, err error) {
	var (
		accounts, scopes               string
		secretRef, tenant, masterKeyID sql.NullString
		sealedValue, wrappedKey        []byte
		state                          string
	)
	if err := row.Scan(&t.ID, &accounts, &t.BudgetCalls, &t.BudgetWindow, &secretRef, &tenant, timeColumn{&t.ConnectedAt},
		&sealedValue, &wrappedKey, &masterKeyID, &state, &t.Health.Reason, timeColumn{&t.Health.CheckedAt},
		timeColumn{&t.Health.ExpiresAt}, timeColumn{&t.Health.DataAccessExpiresAt},
		&scopes, &t.Health.Type, &t.Health.MetaUserID); err != nil {
		return Token{}, nil, err
	}
	t.SecretRef, t.Tenant, t.Health.State = secretRef.String, tenant.String, TokenState(state)
	if sealedValue != nil || wrappedKey != nil || masterKeyID.Valid {
		t.Sealed = &SealedSecret{Ciphertext: sealedValue, WrappedKey: wrappedKey, MasterKeyID: masterKeyID.String}
	}
	if err := json.Unmarshal([]byte(accounts), &t.Accounts); err != nil {
		t.Accounts = nil
		badJSON = fmt.Errorf("token %s: decode accounts: %w", t.ID, err)
	}
	if t.Accounts == nil {
		t.Accounts = []string{}
	}
	if err := json.Unmarshal([]byte(scopes), &t.Health.Scopes); err != nil {
		t.Health.Scopes = nil
		badJSON = errors.Join(badJSON, fmt.Errorf("token %s: decode scopes: %w", t.ID, err))
	}
	if t.Health.Scopes == nil {
		t.Health.Scopes = []string{}
	}
	return t, badJSON, nil
}

func (s *sqlStore) Token(ctx context.Context, id string) (Token, error) {
	row := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+tokenColumns+` FROM tokens WHERE id = ?`), id)
	return one(row, "token "+id, scanToken)
}

// Tokens lists all tokens by id; see Tenants for undecodable accounts (and
// scopes).
func (s *sqlStore) Tokens(ctx context.Context) ([]Token, error) {
	tokens, err := s.queryTokens(ctx, `SELECT `+tokenColumns+` FROM tokens`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	return tokens, nil
}

// queryTokens runs a query selecting tokenColumns and returns the tokens by
// id. A row that cannot be scanned is skipped and one with undecodable JSON
// listed without it: a poison row never fails a list.
func (s *sqlStore) queryTokens(ctx context.Context, query string, args ...any) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	tokens, err := collectUsable(rows, scanToken)
	if err != nil {
		return nil, err
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(tokens, func(a, b Token) int { return strings.Compare(a.ID, b.ID) })
	return tokens, nil
}
