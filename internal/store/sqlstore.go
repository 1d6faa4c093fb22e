package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socialproof/verifier/internal/claim"
)

// Batch sizes. A submitted claim takes 9 query parameters, an evidence action
// 10, a user flag 4, a webhook target 2, an id, user or target in an IN list 1;
// the chunks stay far below the parameter limits of both databases
// (PostgreSQL 65535, SQLite 32766) while keeping round trips few.
const (
	submitChunk   = 500
	evidenceChunk = 500
	flagChunk     = 1000
	webhookChunk  = 1000
	idChunk       = 1000
)

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db *sql.DB
	d  dialect
	// afterActionsRead, when set (tests only), runs inside Evidence between
	// its two reads: the moment a concurrent writer could slip in.
	afterActionsRead func()
}

var _ Store = (*sqlStore)(nil)

// claimColumns is the column list scanClaim reads, in order.
const claimColumns = `id, tenant_id, idem_key, user_ref, handle, kind, target, code, since,
	submitted_at, status, attempts, not_before, last_error, lease_owner, lease_expires_at,
	verdict, method, evidence, decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq, quarantined_at`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanClaim(row scanner) (Claim, error) {
	var (
		c     Claim
		kind  string
		since time.Time
		feed  sql.NullInt64
	)
	err := row.Scan(&c.ID, &c.Tenant, &c.Key, &c.User, &c.Handle, &kind, &c.Target, &c.Code, timeColumn{&since},
		timeColumn{&c.SubmittedAt}, &c.Status, &c.Attempts, timeColumn{&c.NotBefore}, &c.LastError, &c.LeaseOwner, timeColumn{&c.LeaseExpiry},
		&c.Verdict, &c.Method, &c.Evidence, timeColumn{&c.DecidedAt}, &c.RevokedFrom, &c.RevokedEvidence, timeColumn{&c.RevokedAt},
		timeColumn{&c.AuditedAt}, &feed, timeColumn{&c.QuarantinedAt})
	if err != nil {
		return Claim{}, err
	}
	c.FeedSeq = feed.Int64
	c.Kind = claim.Kind(kind)
	if !since.IsZero() {
		c.Since = &since
	}
	return c, nil
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryClaims runs a query selecting claimColumns. A row that cannot be
// scanned is skipped: a poison row never fails its batch.
func (s *sqlStore) queryClaims(ctx context.Context, q queryer, query string, args ...any) ([]Claim, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var claims []Claim
	for rows.Next() {
		c, err := scanClaim(rows)
		if err != nil {
			continue
		}
		claims = append(claims, c)
	}
	return claims, rows.Err()
}

// inTx runs fn in a transaction, committed if fn returns nil. On SQLite the
// transaction takes the write lock up front (_txlock=immediate).
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inSnapshot runs fn in a read-only transaction whose reads all see one
// snapshot of the database: REPEATABLE READ on PostgreSQL (READ COMMITTED,
// its default, takes a snapshot per statement); on SQLite in WAL mode a
// deferred read transaction already reads one snapshot.
func (s *sqlStore) inSnapshot(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: s.d.snapshot, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	return fn(tx)
}

// chunks splits ids into slices of at most size.
func chunks[T any](items []T, size int) [][]T {
	var out [][]T
	for len(items) > size {
		out = append(out, items[:size])
		items = items[size:]
	}
	if len(items) > 0 {
		out = append(out, items)
	}
	return out
}

func idArgs(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

func inList(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// ---- tenants and tokens ----

func (s *sqlStore) UpsertTenant(ctx context.Context, t Tenant) error {
	if t.ID == "" {
		return errors.New("upsert tenant: empty id")
	}
	if t.Tier != TierPremium && t.Tier != TierStandard {
		return fmt.Errorf("upsert tenant %s: tier %q is neither %s nor %s", t.ID, t.Tier, TierPremium, TierStandard)
	}
	accounts := t.Accounts
	if accounts == nil {
		accounts = []Account{}
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		return fmt.Errorf("upsert tenant %s: encode accounts: %w", t.ID, err)
	}
	var tokenID any
	if t.TokenID != "" {
		tokenID = t.TokenID
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO tenants (id, tier, token_id, accounts) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, token_id = excluded.token_id, accounts = excluded.accounts`),
			t.ID, string(t.Tier), tokenID, string(accountsJSON))
		return err
	})
	if err != nil {
		return fmt.Errorf("upsert tenant %s: %w", t.ID, err)
	}
	return nil
}

const tenantColumns = `id, tier, token_id, accounts`

// scanTenant reads a tenant row. Undecodable accounts JSON leaves Accounts
// empty and is reported as badAccounts, for the caller to decide.
func scanTenant(row scanner) (t Tenant, badAccounts error, err error) {
	var (
		tier     string
		tokenID  sql.NullString
		accounts string
	)
	if err := row.Scan(&t.ID, &tier, &tokenID, &accounts); err != nil {
		return Tenant{}, nil, err
	}
	t.Tier = Tier(tier)
	t.TokenID = tokenID.String
	if err := json.Unmarshal([]byte(accounts), &t.Accounts); err != nil {
		t.Accounts = nil
		badAccounts = fmt.Errorf("tenant %s: decode accounts: %w", t.ID, err)
	}
	if t.Accounts == nil {
		t.Accounts = []Account{}
	}
	return t, badAccounts, nil
}

func (s *sqlStore) Tenant(ctx context.Context, id string) (Tenant, error) {
	row := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`), id)
	t, badAccounts, err := scanTenant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, err)
	}
	if badAccounts != nil {
		return Tenant{}, badAccounts
	}
	return t, nil
}

// Tenants lists all tenants by id. A tenant whose accounts cannot be decoded
// is listed with no accounts rather than failing the list.
func (s *sqlStore) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	defer rows.Close()
	var tenants []Tenant
	for rows.Next() {
		t, _, err := scanTenant(rows)
		if err != nil {
			continue
		}
		tenants = append(tenants, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return tenants, nil
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

func (s *sqlStore) MarkTokenState(ctx context.Context, id string, state TokenState, reason string, at time.Time) error {
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
	t, badJSON, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	if badJSON != nil {
		return Token{}, badJSON
	}
	return t, nil
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
	defer rows.Close()
	var tokens []Token
	for rows.Next() {
		t, _, err := scanToken(rows)
		if err != nil {
			continue
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(tokens, func(a, b Token) int { return strings.Compare(a.ID, b.ID) })
	return tokens, nil
}

// ---- claims ----

type tenantKey struct{ tenant, key string }

func (s *sqlStore) Submit(ctx context.Context, claims []claim.Claim, now time.Time) ([]SubmitResult, error) {
	for i, c := range claims {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("submit: claim %d: %w", i, err)
		}
	}
	// A key repeated within the call is a duplicate of its first occurrence;
	// only first occurrences go to the database.
	firstIndex := make(map[tenantKey]int, len(claims))
	var unique []int
	for i, c := range claims {
		k := tenantKey{c.Tenant, c.Key}
		if _, seen := firstIndex[k]; !seen {
			firstIndex[k] = i
			unique = append(unique, i)
		}
	}

	results := make([]SubmitResult, len(claims))
	submittedAt := s.d.timeArg(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(unique, submitChunk) {
			if err := s.submitChunk(ctx, tx, claims, chunk, submittedAt, firstIndex, results); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	for i, c := range claims {
		if first := firstIndex[tenantKey{c.Tenant, c.Key}]; first != i {
			results[i] = SubmitResult{ID: results[first].ID, Duplicate: true}
		}
	}
	return results, nil
}

// submitChunk inserts claims[indexes] and fills results for them: the new id,
// or the id of the claim already stored under the same tenant and key.
func (s *sqlStore) submitChunk(ctx context.Context, tx *sql.Tx, claims []claim.Claim, indexes []int,
	submittedAt any, firstIndex map[tenantKey]int, results []SubmitResult) error {
	args := make([]any, 0, len(indexes)*9)
	for _, i := range indexes {
		c := claims[i]
		args = append(args, c.Tenant, c.Key, c.User, c.Handle, string(c.Kind), c.Target, c.Code, s.d.timePtrArg(c.Since), submittedAt)
	}
	// RETURNING order is unspecified for a multi-row insert, hence the key columns.
	query := `INSERT INTO claims (tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at)
		VALUES ` + placeholders(len(indexes), 9) + `
		ON CONFLICT (tenant_id, idem_key) DO NOTHING
		RETURNING id, tenant_id, idem_key`
	inserted := make(map[tenantKey]bool, len(indexes))
	if err := s.collectIDs(ctx, tx, query, args, func(k tenantKey, id int64) {
		inserted[k] = true
		results[firstIndex[k]] = SubmitResult{ID: id}
	}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if len(inserted) == len(indexes) {
		return nil
	}

	var dupArgs []any
	for _, i := range indexes {
		if k := (tenantKey{claims[i].Tenant, claims[i].Key}); !inserted[k] {
			dupArgs = append(dupArgs, k.tenant, k.key)
		}
	}
	// A join rather than (tenant_id, idem_key) IN (VALUES ...), which SQLite
	// answers by scanning the whole unique index. VALUES names its columns
	// column1, column2 on both databases.
	query = `SELECT c.id, c.tenant_id, c.idem_key
		FROM (VALUES ` + placeholders(len(dupArgs)/2, 2) + `) AS k
		JOIN claims c ON c.tenant_id = k.column1 AND c.idem_key = k.column2`
	found := 0
	if err := s.collectIDs(ctx, tx, query, dupArgs, func(k tenantKey, id int64) {
		found++
		results[firstIndex[k]] = SubmitResult{ID: id, Duplicate: true}
	}); err != nil {
		return fmt.Errorf("find duplicates: %w", err)
	}
	if found != len(dupArgs)/2 {
		// Only a concurrent delete could get here; the store never deletes.
		return fmt.Errorf("find duplicates: %d of %d conflicting claims not found", len(dupArgs)/2-found, len(dupArgs)/2)
	}
	return nil
}

// collectIDs runs a query returning (id, tenant_id, idem_key) rows.
func (s *sqlStore) collectIDs(ctx context.Context, tx *sql.Tx, query string, args []any, found func(k tenantKey, id int64)) error {
	rows, err := tx.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			k  tenantKey
		)
		if err := rows.Scan(&id, &k.tenant, &k.key); err != nil {
			return err
		}
		found(k, id)
	}
	return rows.Err()
}

func (s *sqlStore) Claim(ctx context.Context, owner string, limit int, ttl time.Duration, now time.Time) ([]Claim, error) {
	if owner == "" {
		return nil, errors.New("claim: empty lease owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	nowArg := s.d.timeArg(now)
	query := leaseClaims + `
			ORDER BY submitted_at, id
			LIMIT ?` + s.d.claimLock + `)
		RETURNING ` + claimColumns
	var claimed []Claim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		claimed, err = s.queryClaims(ctx, tx, query, owner, s.d.timeArg(now.Add(ttl)), nowArg, nowArg, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	sortByAge(claimed)
	return claimed, nil
}

// claimable selects the claims Claim may lease at a time given twice as
// arguments: pending and not deferred past it, or leased with a lease expired
// before it. The leading status IN (...) repeats what the OR implies; it lets
// both databases use the partial indexes on open claims.
const claimable = `status IN ('pending', 'leased')
	AND ((status = 'pending' AND (not_before IS NULL OR not_before <= ?))
	  OR (status = 'leased' AND lease_expires_at < ?))`

// leaseClaims is the head of a claiming UPDATE: it leases to an owner until a
// time (the first two arguments) the claims a subquery picks among the
// claimable ones (the next two). The caller adds to the subquery its
// conditions, ORDER BY, LIMIT and the dialect's claimLock, closes it and asks
// RETURNING claimColumns.
const leaseClaims = `UPDATE claims SET status = 'leased', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM claims
			WHERE ` + claimable

// sortByAge sorts claims oldest first, by submitted_at then id: the order
// claiming picks them in, which RETURNING does not keep.
func sortByAge(claims []Claim) {
	slices.SortFunc(claims, func(a, b Claim) int {
		if c := a.SubmittedAt.Compare(b.SubmittedAt); c != 0 {
			return c
		}
		return cmpInt64(a.ID, b.ID)
	})
}

// fedTargets selects the targets webhooks fed since a time (the argument); a
// NULL time, from a zero fedSince, selects none.
const fedTargets = `SELECT target FROM webhook_targets WHERE last_at >= ?`

func (s *sqlStore) OpenLoad(ctx context.Context, now, fedSince time.Time) ([]TenantLoad, error) {
	nowArg := s.d.timeArg(now)
	// One pass over the open claims: the inner query marks each claim ready,
	// in flight (or neither: deferred) and on a fed target; the outer one
	// counts by tenant. webhook_targets has one row per target, so the join
	// never repeats a claim.
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT tenant_id,
			SUM(ready), COUNT(DISTINCT CASE WHEN ready = 1 THEN target END),
			COUNT(DISTINCT CASE WHEN ready = 1 AND fed = 1 THEN target END),
			MIN(CASE WHEN ready = 1 THEN submitted_at END),
			SUM(in_flight), COUNT(DISTINCT CASE WHEN in_flight = 1 THEN lease_owner || ' ' || target END)
		FROM (
			SELECT c.tenant_id, c.target, c.submitted_at, c.lease_owner,
				CASE WHEN `+claimable+` THEN 1 ELSE 0 END AS ready,
				CASE WHEN status = 'leased' AND lease_expires_at >= ? THEN 1 ELSE 0 END AS in_flight,
				CASE WHEN w.target IS NULL THEN 0 ELSE 1 END AS fed
			FROM claims c LEFT JOIN webhook_targets w ON w.target = c.target AND w.last_at >= ?
			WHERE c.status IN ('pending', 'leased')
		) AS o
		GROUP BY tenant_id`), nowArg, nowArg, nowArg, s.d.timeArg(fedSince))
	if err != nil {
		return nil, fmt.Errorf("open load: %w", err)
	}
	defer rows.Close()
	var loads []TenantLoad
	for rows.Next() {
		var l TenantLoad
		if err := rows.Scan(&l.Tenant, &l.Ready, &l.ReadyTargets, &l.ReadyFed, timeColumn{&l.OldestReady},
			&l.InFlight, &l.InFlightTargets); err != nil {
			return nil, fmt.Errorf("open load: %w", err)
		}
		loads = append(loads, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open load: %w", err)
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(loads, func(a, b TenantLoad) int { return strings.Compare(a.Tenant, b.Tenant) })
	return loads, nil
}

func (s *sqlStore) ClaimQuotas(ctx context.Context, owner string, quotas []Quota, limit int, fedSince time.Time,
	ttl time.Duration, now time.Time) ([]Claim, error) {
	if owner == "" {
		return nil, errors.New("claim quotas: empty lease owner")
	}
	// A second quota of a tenant would pick its targets anew among the claims
	// the first left, leasing past the first's bound.
	seen := make(map[string]bool, len(quotas))
	for _, q := range quotas {
		if seen[q.Tenant] {
			return nil, fmt.Errorf("claim quotas: tenant %s has two quotas", q.Tenant)
		}
		seen[q.Tenant] = true
	}
	if limit <= 0 || len(quotas) == 0 {
		return nil, nil
	}
	nowArg, fedArg := s.d.timeArg(now), s.d.timeArg(fedSince)
	var claimed []Claim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range quotas {
			if len(claimed) >= limit {
				break
			}
			// The targets are picked in a subquery of their own: PostgreSQL
			// refuses FOR UPDATE beside GROUP BY, and only the claims leased
			// need the lock. Concurrent callers may pick the same targets;
			// SKIP LOCKED then leaves one of them fewer claims, never the
			// same ones.
			query := leaseClaims + ` AND tenant_id = ?`
			args := []any{owner, s.d.timeArg(now.Add(ttl)), nowArg, nowArg, q.Tenant}
			switch {
			case q.Targets == 0:
				query += ` AND target IN (` + fedTargets + `)`
				args = append(args, fedArg)
			case q.Targets > 0:
				query += ` AND (target IN (` + fedTargets + `) OR target IN (
				SELECT target FROM claims
				WHERE ` + claimable + ` AND tenant_id = ? AND target NOT IN (` + fedTargets + `)
				GROUP BY target
				ORDER BY MIN(submitted_at), target
				LIMIT ?))`
				args = append(args, fedArg, nowArg, nowArg, q.Tenant, fedArg, q.Targets)
			}
			query += `
			ORDER BY submitted_at, id
			LIMIT ?` + s.d.claimLock + `)
		RETURNING ` + claimColumns
			args = append(args, limit-len(claimed))
			got, err := s.queryClaims(ctx, tx, query, args...)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", q.Tenant, err)
			}
			claimed = append(claimed, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim quotas: %w", err)
	}
	sortByAge(claimed)
	return claimed, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *sqlStore) ExtendLease(ctx context.Context, owner string, ids []int64, ttl time.Duration, now time.Time) (int, error) {
	if owner == "" {
		return 0, errors.New("extend lease: empty lease owner")
	}
	expires := s.d.timeArg(now.Add(ttl))
	extended := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(ids, idChunk) {
			args := append([]any{expires, owner}, idArgs(chunk)...)
			res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE claims SET lease_expires_at = ?
				WHERE status = 'leased' AND lease_owner = ? AND id IN `+inList(len(chunk))), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			extended += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("extend lease: %w", err)
	}
	return extended, nil
}

func (s *sqlStore) BehindReaders(ctx context.Context, owner string, ids []int64, now time.Time) ([]int64, error) {
	var behind []int64
	nowArg := s.d.timeArg(now)
	for _, chunk := range chunks(ids, idChunk) {
		// claims_open_by_tenant (tenant_id, target, submitted_at, id) serves
		// the inner lookup.
		args := append([]any{owner, nowArg}, idArgs(chunk)...)
		rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT c.id FROM claims c WHERE EXISTS (
				SELECT 1 FROM claims o WHERE o.tenant_id = c.tenant_id AND o.target = c.target AND o.kind = c.kind
					AND o.status = 'leased' AND o.lease_owner <> ? AND o.lease_expires_at >= ?
					AND (o.submitted_at < c.submitted_at OR (o.submitted_at = c.submitted_at AND o.id < c.id)))
				AND c.id IN `+inList(len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("behind readers: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("behind readers: %w", err)
			}
			behind = append(behind, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("behind readers: %w", err)
		}
	}
	slices.Sort(behind)
	return behind, nil
}

// Claims returns the claims with these ids in the order of the ids, each once;
// missing ids are skipped.
func (s *sqlStore) Claims(ctx context.Context, ids []int64) ([]Claim, error) {
	byID := make(map[int64]Claim, len(ids))
	for _, chunk := range chunks(ids, idChunk) {
		found, err := s.queryClaims(ctx, s.db, `SELECT `+claimColumns+` FROM claims WHERE id IN `+inList(len(chunk)), idArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		for _, c := range found {
			byID[c.ID] = c
		}
	}
	claims := make([]Claim, 0, len(byID))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			claims = append(claims, c)
			delete(byID, id)
		}
	}
	return claims, nil
}

func (s *sqlStore) Decide(ctx context.Context, decisions []Decision, now time.Time) ([]int64, error) {
	for i, dec := range decisions {
		if dec.Verdict == "" {
			return nil, fmt.Errorf("decide: decision %d (claim %d): empty verdict", i, dec.ClaimID)
		}
	}
	var decided []int64
	if len(decisions) == 0 {
		return nil, nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A number in the verdict feed for each decision; those of claims
		// already decided stay unused (the feed has gaps, never repeats).
		base, err := s.reserveFeed(ctx, tx, len(decisions))
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
			SET status = 'decided', verdict = ?, method = ?, evidence = ?, decided_at = ?,
				lease_owner = '', lease_expires_at = NULL, feed_seq = ?
			WHERE id = ? AND status IN ('pending', 'leased')
			RETURNING tenant_id, kind`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		decidedAt := s.d.timeArg(now)
		counts := map[VerdictCount]int64{}
		for i, dec := range decisions {
			var tenant, kind string
			err := stmt.QueryRowContext(ctx, dec.Verdict, dec.Method, dec.Evidence, decidedAt, base+int64(i)+1, dec.ClaimID).Scan(&tenant, &kind)
			if errors.Is(err, sql.ErrNoRows) {
				continue // already decided, quarantined (or unknown): not decided now
			}
			if err != nil {
				return fmt.Errorf("claim %d: %w", dec.ClaimID, err)
			}
			decided = append(decided, dec.ClaimID)
			counts[VerdictCount{Tenant: tenant, Kind: kind, Method: dec.Method, Verdict: dec.Verdict}]++
		}
		return s.addVerdictCounts(ctx, tx, counts)
	})
	if err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	return decided, nil
}

// reserveFeed takes n numbers of the verdict feed and returns the one
// before them. The counter row stays locked until tx ends, so numbers are
// handed out in commit order.
func (s *sqlStore) reserveFeed(ctx context.Context, tx *sql.Tx, n int) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, s.d.rebind(`UPDATE feed_counter SET last = last + ? WHERE id = 1 RETURNING last`), n).Scan(&last); err != nil {
		return 0, fmt.Errorf("verdict feed number: %w", err)
	}
	return last - int64(n), nil
}

// Feed returns a tenant's claims whose feed number is after after (decided,
// or revoked, since), in feed order, at most limit.
func (s *sqlStore) Feed(ctx context.Context, tenant string, after int64, limit int) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	claims, err := s.queryClaims(ctx, s.db, `SELECT `+claimColumns+` FROM claims
		WHERE tenant_id = ? AND feed_seq > ? ORDER BY feed_seq LIMIT ?`, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("verdict feed: %w", err)
	}
	return claims, nil
}

// ---- platform API keys ----

// HashAPIKey is what the store keeps of an API key: its SHA-256, in hex.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) AddAPIKey(ctx context.Context, tenant, name, key string, now time.Time) error {
	if tenant == "" || len(key) < MinAPIKeyLength {
		return fmt.Errorf("add API key: need a tenant and a key of at least %d characters", MinAPIKeyLength)
	}
	if _, err := s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO api_keys (key_hash, tenant_id, name, created_at) VALUES (?, ?, ?, ?)`),
		HashAPIKey(key), tenant, name, s.d.timeArg(now)); err != nil {
		return fmt.Errorf("add API key for tenant %s: %w", tenant, err)
	}
	return nil
}

func (s *sqlStore) APIKeyTenant(ctx context.Context, key string) (string, error) {
	var tenant string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT tenant_id FROM api_keys WHERE key_hash = ?`), HashAPIKey(key)).Scan(&tenant)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("API key: %w", err)
	}
	return tenant, nil
}

func (s *sqlStore) Defer(ctx context.Context, owner string, deferrals []Deferral) (int, error) {
	deferred := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
			SET status = 'pending', not_before = ?, last_error = ?, lease_owner = '', lease_expires_at = NULL
			WHERE id = ? AND status = 'leased' AND lease_owner = ?`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, d := range deferrals {
			res, err := stmt.ExecContext(ctx, s.d.timeArg(d.NotBefore), d.Reason, d.ClaimID, owner)
			if err != nil {
				return fmt.Errorf("claim %d: %w", d.ClaimID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("claim %d: %w", d.ClaimID, err)
			}
			deferred += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("defer: %w", err)
	}
	return deferred, nil
}

func (s *sqlStore) Quarantine(ctx context.Context, owner string, items []Quarantine, now time.Time) (int, error) {
	if owner == "" {
		return 0, errors.New("quarantine: empty lease owner")
	}
	for i, q := range items {
		if q.Reason == "" {
			return 0, fmt.Errorf("quarantine: item %d (claim %d): empty reason", i, q.ClaimID)
		}
	}
	if len(items) == 0 {
		return 0, nil
	}
	// A zero now would leave quarantined_at NULL on a quarantined claim.
	if now.IsZero() {
		return 0, errors.New("quarantine: zero now")
	}
	quarantined := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
			SET status = 'quarantined', last_error = ?, quarantined_at = ?, lease_owner = '', lease_expires_at = NULL
			WHERE id = ? AND status = 'leased' AND lease_owner = ?`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		at := s.d.timeArg(now)
		for _, q := range items {
			res, err := stmt.ExecContext(ctx, q.Reason, at, q.ClaimID, owner)
			if err != nil {
				return fmt.Errorf("claim %d: %w", q.ClaimID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("claim %d: %w", q.ClaimID, err)
			}
			quarantined += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
	}
	return quarantined, nil
}

func (s *sqlStore) Quarantined(ctx context.Context, f ExportFilter) ([]Claim, error) {
	// status = 'quarantined' is the condition of the partial index claims_quarantined.
	return s.claimsByStatus(ctx, StatusQuarantined, f)
}

func (s *sqlStore) Release(ctx context.Context, ids []int64) (int, error) {
	released := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(ids, idChunk) {
			res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE claims
				SET status = 'pending', quarantined_at = NULL, not_before = NULL
				WHERE status = 'quarantined' AND id IN `+inList(len(chunk))), idArgs(chunk)...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			released += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("release: %w", err)
	}
	return released, nil
}

func (s *sqlStore) Revoke(ctx context.Context, id int64, evidence string, now time.Time) (bool, error) {
	var revoked bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// SET expressions read the row as it was, so revoked_from gets the
		// verdict being replaced. A revocation is an audit outcome, so it
		// sets audited_at too, even over an earlier audit that confirmed the
		// verdict: audited_at dates the audit the current verdict comes from.
		revokedAt := s.d.timeArg(now)
		base, err := s.reserveFeed(ctx, tx, 1) // the revocation appears in the feed again
		if err != nil {
			return err
		}
		var tenant, kind string
		err = tx.QueryRowContext(ctx, s.d.rebind(`UPDATE claims
			SET verdict = ?, revoked_from = verdict, revoked_evidence = ?, revoked_at = ?, audited_at = ?, feed_seq = ?
			WHERE id = ? AND status = 'decided' AND verdict <> ?
			RETURNING tenant_id, kind`),
			VerdictRevoked, evidence, revokedAt, revokedAt, base+1, id, VerdictRevoked).Scan(&tenant, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // not decided, or revoked already
		}
		if err != nil {
			return err
		}
		revoked = true
		return s.addVerdictCounts(ctx, tx, map[VerdictCount]int64{
			{Tenant: tenant, Kind: kind, Method: MethodAudit, Verdict: VerdictRevoked}: 1,
		})
	})
	if err != nil {
		return false, fmt.Errorf("revoke claim %d: %w", id, err)
	}
	return revoked, nil
}

// addVerdictCounts adds to the verdict counters in the transaction that
// made the verdicts. The keys of counts carry no N; their values are added.
func (s *sqlStore) addVerdictCounts(ctx context.Context, tx *sql.Tx, counts map[VerdictCount]int64) error {
	if len(counts) == 0 {
		return nil
	}
	keys := make([]VerdictCount, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	// The same order in every transaction, so two of them never wait on
	// each other's counter rows in opposite orders.
	slices.SortFunc(keys, compareVerdictCounts)
	stmt, err := tx.PrepareContext(ctx, s.d.rebind(`INSERT INTO verdict_counts (tenant_id, kind, method, verdict, n) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, kind, method, verdict) DO UPDATE SET n = verdict_counts.n + excluded.n`))
	if err != nil {
		return fmt.Errorf("verdict counts: %w", err)
	}
	defer stmt.Close()
	for _, k := range keys {
		if _, err := stmt.ExecContext(ctx, k.Tenant, k.Kind, k.Method, k.Verdict, counts[k]); err != nil {
			return fmt.Errorf("verdict counts: %w", err)
		}
	}
	return nil
}

func compareVerdictCounts(a, b VerdictCount) int {
	return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Kind, b.Kind),
		strings.Compare(a.Method, b.Method), strings.Compare(a.Verdict, b.Verdict))
}

func (s *sqlStore) VerdictCounts(ctx context.Context) ([]VerdictCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tenant_id, kind, method, verdict, n FROM verdict_counts`)
	if err != nil {
		return nil, fmt.Errorf("verdict counts: %w", err)
	}
	defer rows.Close()
	var counts []VerdictCount
	for rows.Next() {
		var c VerdictCount
		if err := rows.Scan(&c.Tenant, &c.Kind, &c.Method, &c.Verdict, &c.N); err != nil {
			return nil, fmt.Errorf("verdict counts: %w", err)
		}
		counts = append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verdict counts: %w", err)
	}
	slices.SortFunc(counts, compareVerdictCounts)
	return counts, nil
}

func (s *sqlStore) Stats(ctx context.Context) ([]Stats, error) {
	// No ORDER BY: the grouping runs straight off the covering index
	// claims_tenant_status (which holds audited_at for the second count), and
	// sorting happens below in byte order anyway.
	rows, err := s.db.QueryContext(ctx, `SELECT tenant_id, status, verdict, COUNT(*), COUNT(audited_at) FROM claims
		GROUP BY tenant_id, status, verdict`)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	byTenant := map[string]*Stats{}
	for rows.Next() {
		var (
			tenant, status, verdict string
			count, audited          int
		)
		if err := rows.Scan(&tenant, &status, &verdict, &count, &audited); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		st := byTenant[tenant]
		if st == nil {
			st = &Stats{Tenant: tenant, Decided: map[string]int{}}
			byTenant[tenant] = st
		}
		st.Audited += audited
		switch status {
		case StatusPending:
			st.Pending += count
		case StatusLeased:
			st.Leased += count
		case StatusDecided:
			st.Decided[verdict] += count
		case StatusQuarantined:
			st.Quarantined += count
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	stats := make([]Stats, 0, len(byTenant))
	for _, st := range byTenant {
		stats = append(stats, *st)
	}
	slices.SortFunc(stats, func(a, b Stats) int { return strings.Compare(a.Tenant, b.Tenant) })
	return stats, nil
}

func (s *sqlStore) Decided(ctx context.Context, f ExportFilter) ([]Claim, error) {
	return s.claimsByStatus(ctx, StatusDecided, f)
}

// claimsByStatus lists the claims in a status, in id order, as f selects.
// The status is one of the Status constants, written into the query as a
// literal so both databases can match it to their partial indexes.
func (s *sqlStore) claimsByStatus(ctx context.Context, status string, f ExportFilter) ([]Claim, error) {
	query := `SELECT ` + claimColumns + ` FROM claims WHERE status = '` + status + `' AND id > ?`
	args := []any{f.AfterID}
	if f.Tenant != "" {
		query += ` AND tenant_id = ?`
		args = append(args, f.Tenant)
	}
	query += ` ORDER BY id`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	claims, err := s.queryClaims(ctx, s.db, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s claims: %w", status, err)
	}
	return claims, nil
}

// ---- user risk ----

// tenantUser identifies a flagged user.
type tenantUser struct{ tenant, user string }

func (s *sqlStore) FlagUsers(ctx context.Context, flags []UserFlag) error {
	for i, f := range flags {
		switch {
		case f.Tenant == "":
			return fmt.Errorf("flag users: flag %d: empty tenant", i)
		case f.User == "":
			return fmt.Errorf("flag users: flag %d (tenant %s): empty user", i, f.Tenant)
		case f.Until.IsZero():
			return fmt.Errorf("flag users: flag %d (%s/%s): zero until", i, f.Tenant, f.User)
		}
	}
	// PostgreSQL refuses an upsert that touches a row twice, so a user
	// flagged more than once in the call is reduced here to the flag the
	// database would keep: the latest Until, at the precision stored, the
	// first such flag on a tie, as if the flags were applied in order.
	latest := make(map[tenantUser]UserFlag, len(flags))
	for _, f := range flags {
		k := tenantUser{f.Tenant, f.User}
		prev, seen := latest[k]
		if !seen || f.Until.Truncate(time.Microsecond).After(prev.Until.Truncate(time.Microsecond)) {
			latest[k] = f
		}
	}
	// Rows in key order, so concurrent callers lock shared rows in the same
	// order and cannot deadlock on PostgreSQL.
	keys := make([]tenantUser, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tenantUser) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.user, b.user)
	})
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(keys, flagChunk) {
			args := make([]any, 0, len(chunk)*4)
			for _, k := range chunk {
				f := latest[k]
				args = append(args, f.Tenant, f.User, s.d.timeArg(f.Until), f.Reason)
			}
			// The WHERE keeps a stored flag that lasts at least as long,
			// reason included.
			_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO user_risk (tenant_id, user_ref, until, reason)
				VALUES `+placeholders(len(chunk), 4)+`
				ON CONFLICT (tenant_id, user_ref) DO UPDATE SET until = excluded.until, reason = excluded.reason
				WHERE excluded.until > user_risk.until`), args...)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flag users: %w", err)
	}
	return nil
}

func (s *sqlStore) RiskyUsers(ctx context.Context, tenant string, users []string, now time.Time) ([]string, error) {
	// A zero now would compare with NULL and find nobody risky: refuse it
	// rather than let risky users through.
	if now.IsZero() {
		return nil, errors.New("risky users: zero now")
	}
	unique := slices.Clone(users)
	slices.Sort(unique)
	unique = slices.Compact(unique)
	nowArg := s.d.timeArg(now)
	var risky []string
	for _, chunk := range chunks(unique, idChunk) {
		args := make([]any, 0, len(chunk)+2)
		args = append(args, tenant, nowArg)
		for _, u := range chunk {
			args = append(args, u)
		}
		found, err := s.queryStrings(ctx, `SELECT user_ref FROM user_risk
			WHERE tenant_id = ? AND until > ? AND user_ref IN `+inList(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("risky users of %s: %w", tenant, err)
		}
		risky = append(risky, found...)
	}
	// Chunks are disjoint, so there is nothing to deduplicate; sorting is
	// byte order, the same on both databases whatever PostgreSQL's collation.
	slices.Sort(risky)
	return risky, nil
}

// queryStrings runs a query selecting one text column.
func (s *sqlStore) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ---- audit ----

// provisionalUnaudited selects the claims awaiting audit. It is the condition
// of the partial index claims_audit_queue word for word: SQLite uses a partial
// index only for a query whose WHERE contains the index's condition. Only a
// decided claim has a verdict, so the status need not be tested.
const provisionalUnaudited = `verdict IN ('approved_by_sample', 'approved_on_honor') AND audited_at IS NULL`

func (s *sqlStore) AuditQueue(ctx context.Context, limit int, decidedBefore time.Time) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	claims, err := s.queryClaims(ctx, s.db, `SELECT `+claimColumns+` FROM claims
		WHERE `+provisionalUnaudited+` AND decided_at <= ?
		ORDER BY decided_at, id
		LIMIT ?`, s.d.timeArg(decidedBefore), limit)
	if err != nil {
		return nil, fmt.Errorf("audit queue: %w", err)
	}
	return claims, nil
}

func (s *sqlStore) MarkAudited(ctx context.Context, ids []int64, now time.Time) (int, error) {
	// A zero now would write NULL: claims counted as marked yet still queued.
	if now.IsZero() {
		return 0, errors.New("mark audited: zero now")
	}
	auditedAt := s.d.timeArg(now)
	marked := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(ids, idChunk) {
			args := append([]any{auditedAt}, idArgs(chunk)...)
			res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE claims SET audited_at = ?
				WHERE `+provisionalUnaudited+` AND id IN `+inList(len(chunk))), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			marked += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("mark audited: %w", err)
	}
	return marked, nil
}

func (s *sqlStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// ---- evidence ----

// evidenceKey identifies a stored action.
type evidenceKey struct{ target, edge, action string }

func (k evidenceKey) compare(o evidenceKey) int {
	if c := strings.Compare(k.target, o.target); c != 0 {
		return c
	}
	if c := strings.Compare(k.edge, o.edge); c != 0 {
		return c
	}
	return strings.Compare(k.action, o.action)
}

// evidenceColumns is the column list scanEvidence reads and evidenceArgs
// writes, in order.
const evidenceColumns = `target, edge, action_id, username, user_id, content, acted_at, source, deleted, seen_at`

func (s *sqlStore) evidenceArgs(args []any, a EvidenceAction) []any {
	return append(args, a.Target, a.Edge, a.ActionID, a.Username, a.UserID, a.Text,
		s.d.timeArg(a.Time), a.Source, a.Deleted, s.d.timeArg(a.SeenAt))
}

func scanEvidence(row scanner) (EvidenceAction, error) {
	var a EvidenceAction
	err := row.Scan(&a.Target, &a.Edge, &a.ActionID, &a.Username, &a.UserID, &a.Text,
		timeColumn{&a.Time}, &a.Source, &a.Deleted, timeColumn{&a.SeenAt})
	return a, err
}

// laterSighting is what storing action b over a stored a leaves, by the rules
// of SaveEvidence's upsert: b, keeping a's time when b's is unknown, and a's
// source.
func laterSighting(a, b EvidenceAction) EvidenceAction {
	if b.Time.IsZero() {
		b.Time = a.Time
	}
	b.Source = a.Source
	return b
}

func (s *sqlStore) SaveEvidence(ctx context.Context, actions []EvidenceAction) (int, error) {
	for i, a := range actions {
		switch {
		case a.Target == "":
			return 0, fmt.Errorf("save evidence: action %d: empty target", i)
		case a.Edge == "":
			return 0, fmt.Errorf("save evidence: action %d (target %s): empty edge", i, a.Target)
		case a.ActionID == "":
			return 0, fmt.Errorf("save evidence: action %d (%s/%s): empty action id", i, a.Target, a.Edge)
		case a.Source != SourceGraph && a.Source != SourceWebhook:
			return 0, fmt.Errorf("save evidence: action %d (%s/%s/%s): source %q is neither %s nor %s",
				i, a.Target, a.Edge, a.ActionID, a.Source, SourceGraph, SourceWebhook)
		case a.SeenAt.IsZero():
			// A NULL seen_at would never be purged.
			return 0, fmt.Errorf("save evidence: action %d (%s/%s/%s): zero seen_at", i, a.Target, a.Edge, a.ActionID)
		}
	}
	// PostgreSQL refuses an upsert that touches a row twice, so an action
	// repeated in the call is folded here into what saving the repeats one
	// after the other would store.
	folded := make(map[evidenceKey]EvidenceAction, len(actions))
	for _, a := range actions {
		k := evidenceKey{a.Target, a.Edge, a.ActionID}
		if prev, seen := folded[k]; seen {
			a = laterSighting(prev, a)
		}
		folded[k] = a
	}
	// Key order, so concurrent callers lock shared rows in the same order and
	// cannot deadlock on PostgreSQL.
	keys := make([]evidenceKey, 0, len(folded))
	for k := range folded {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, evidenceKey.compare)

	// Inserting without touching stored rows first tells which actions are
	// new, exactly even under concurrent callers: only one insert of a key
	// succeeds. Every chunk is inserted before any stored row is rewritten,
	// so a caller never holds a rewritten row while waiting on a key another
	// caller inserted. The rest is then upserted rather than updated, in case
	// a purge deleted one of them meanwhile.
	inserted := make(map[evidenceKey]bool, len(keys))
	fed, fedAt := webhookSightings(actions)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(keys, evidenceChunk) {
			args := make([]any, 0, len(chunk)*10)
			for _, k := range chunk {
				args = s.evidenceArgs(args, folded[k])
			}
			rows, err := tx.QueryContext(ctx, s.d.rebind(`INSERT INTO evidence (`+evidenceColumns+`)
				VALUES `+placeholders(len(chunk), 10)+`
				ON CONFLICT (target, edge, action_id) DO NOTHING
				RETURNING target, edge, action_id`), args...)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			for rows.Next() {
				var k evidenceKey
				if err := rows.Scan(&k.target, &k.edge, &k.action); err != nil {
					rows.Close()
					return fmt.Errorf("insert: %w", err)
				}
				inserted[k] = true
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
		}
		var stored []evidenceKey
		for _, k := range keys {
			if !inserted[k] {
				stored = append(stored, k)
			}
		}
		for _, chunk := range chunks(stored, evidenceChunk) {
			args := make([]any, 0, len(chunk)*10)
			for _, k := range chunk {
				args = s.evidenceArgs(args, folded[k])
			}
			// The SET list is laterSighting in SQL: source is not in it.
			_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO evidence (`+evidenceColumns+`)
				VALUES `+placeholders(len(chunk), 10)+`
				ON CONFLICT (target, edge, action_id) DO UPDATE SET
					username = excluded.username, user_id = excluded.user_id, content = excluded.content,
					acted_at = COALESCE(excluded.acted_at, evidence.acted_at),
					deleted = excluded.deleted, seen_at = excluded.seen_at`), args...)
			if err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
		// Last, after every evidence row: a caller holding webhook_targets
		// rows never waits on an evidence row, and takes them in target
		// order, so concurrent callers cannot deadlock on PostgreSQL.
		for _, chunk := range chunks(fed, webhookChunk) {
			args := make([]any, 0, len(chunk)*2)
			for _, target := range chunk {
				args = append(args, target, s.d.timeArg(fedAt[target]))
			}
			_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO webhook_targets (target, last_at)
				VALUES `+placeholders(len(chunk), 2)+`
				ON CONFLICT (target) DO UPDATE SET last_at = excluded.last_at
				WHERE excluded.last_at > webhook_targets.last_at`), args...)
			if err != nil {
				return fmt.Errorf("webhook targets: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("save evidence: %w", err)
	}
	return len(inserted), nil
}

// webhookSightings returns the targets of webhook actions, sorted, and the
// latest SeenAt of each at the stored precision: one row each, since
// PostgreSQL refuses an upsert that touches a row twice. It reads the actions
// as given, not as folded: folding keeps the first source of an action, and
// a webhook resighting a Graph action still shows the target is fed.
func webhookSightings(actions []EvidenceAction) ([]string, map[string]time.Time) {
	latest := map[string]time.Time{}
	for _, a := range actions {
		if a.Source != SourceWebhook {
			continue
		}
		if at := storedTime(a.SeenAt); at.After(latest[a.Target]) {
			latest[a.Target] = at
		}
	}
	targets := make([]string, 0, len(latest))
	for target := range latest {
		targets = append(targets, target)
	}
	slices.Sort(targets)
	return targets, latest
}

// uniqueStrings returns values sorted, without duplicates, so IN-list chunks
// are disjoint and return each row once.
func uniqueStrings(values []string) []string {
	unique := slices.Clone(values)
	slices.Sort(unique)
	return slices.Compact(unique)
}

func stringArgs(values []string) []any {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return args
}

// Evidence reads the actions and the coverage in one snapshot. Read one
// after the other, a coverage could vouch for an action stored between the
// two reads: a concurrent batch that read the claimant's action stores it,
// then its coverage, and this batch would see the coverage without the
// action and reject a genuine claim (seen in the chaos suite, PostgreSQL
// scenario). In one snapshot every coverage comes with its actions:
// activities store a read's actions before its coverage, and PurgeEvidence
// deletes coverage with the actions under it, in one transaction.
func (s *sqlStore) Evidence(ctx context.Context, targets []string) (actions []EvidenceAction, coverages []Coverage, err error) {
	targets = uniqueStrings(targets)
	err = s.inSnapshot(ctx, func(tx *sql.Tx) error {
		var err error
		if actions, err = s.evidenceActions(ctx, tx, targets); err != nil {
			return err
		}
		if s.afterActionsRead != nil {
			s.afterActionsRead()
		}
		coverages, err = s.coverages(ctx, tx, targets)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("evidence: %w", err)
	}
	return actions, coverages, nil
}

// evidenceActions reads the actions stored on targets (unique), sorted as
// Evidence promises.
func (s *sqlStore) evidenceActions(ctx context.Context, tx *sql.Tx, targets []string) ([]EvidenceAction, error) {
	var actions []EvidenceAction
	for _, chunk := range chunks(targets, idChunk) {
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT `+evidenceColumns+` FROM evidence
			WHERE target IN `+inList(len(chunk))), stringArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
		for rows.Next() {
			// Unlike a poison claim, an unreadable action fails the read:
			// skipping it would make a proof look absent.
			a, err := scanEvidence(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("actions: %w", err)
			}
			actions = append(actions, a)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
	}
	// Sorted here rather than by ORDER BY: byte order whatever PostgreSQL's
	// collation, and NULL times last on both databases.
	slices.SortFunc(actions, func(a, b EvidenceAction) int {
		if c := strings.Compare(a.Target, b.Target); c != 0 {
			return c
		}
		if c := strings.Compare(a.Edge, b.Edge); c != 0 {
			return c
		}
		// Newest first; the zero time, the earliest of all, comes last.
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ActionID, b.ActionID)
	})
	return actions, nil
}

// coverages reads the coverage stored on targets (unique), by target then edge.
func (s *sqlStore) coverages(ctx context.Context, tx *sql.Tx, targets []string) ([]Coverage, error) {
	var coverages []Coverage
	for _, chunk := range chunks(targets, idChunk) {
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT target, edge, from_at, to_at, read_at FROM evidence_coverage
			WHERE target IN `+inList(len(chunk))), stringArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
		for rows.Next() {
			var c Coverage
			if err := rows.Scan(&c.Target, &c.Edge, timeColumn{&c.From}, timeColumn{&c.To}, timeColumn{&c.ReadAt}); err != nil {
				rows.Close()
				return nil, fmt.Errorf("coverage: %w", err)
			}
			coverages = append(coverages, c)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
	}
	slices.SortFunc(coverages, func(a, b Coverage) int {
		if c := strings.Compare(a.Target, b.Target); c != 0 {
			return c
		}
		return strings.Compare(a.Edge, b.Edge)
	})
	return coverages, nil
}

// mergeCoverage is what AddCoverage stores when old is stored and c is added.
// Both are at the stored precision.
func mergeCoverage(old, c Coverage) Coverage {
	// A zero From is the earliest time: it is never after anything.
	overlap := !c.From.After(old.To) && !old.From.After(c.To)
	if !overlap {
		if c.ReadAt.After(old.ReadAt) {
			return c
		}
		return old
	}
	merged := old
	if c.ReadAt.After(old.ReadAt) {
		merged.ReadAt = c.ReadAt
	}
	if !old.From.IsZero() && (c.From.IsZero() || c.From.Before(old.From)) {
		merged.From = c.From
	}
	if c.To.After(old.To) {
		merged.To = c.To
	}
	return merged
}

// storedTime is t as the store keeps it: UTC, to the microsecond.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (s *sqlStore) AddCoverage(ctx context.Context, c Coverage) (Coverage, error) {
	c.From, c.To, c.ReadAt = storedTime(c.From), storedTime(c.To), storedTime(c.ReadAt)
	switch {
	case c.Target == "":
		return Coverage{}, errors.New("add coverage: empty target")
	case c.ReadAt.IsZero():
		return Coverage{}, fmt.Errorf("add coverage %s/%s: zero read time", c.Target, c.Edge)
	case c.Edge == "":
		return Coverage{}, fmt.Errorf("add coverage (target %s): empty edge", c.Target)
	case c.To.IsZero():
		return Coverage{}, fmt.Errorf("add coverage %s/%s: zero to", c.Target, c.Edge)
	case c.From.After(c.To):
		return Coverage{}, fmt.Errorf("add coverage %s/%s: from %v after to %v", c.Target, c.Edge, c.From, c.To)
	}
	var stored Coverage
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Inserting first needs no lock when nothing is stored yet. When a
		// row is, the locked read makes concurrent adders of the same
		// (target, edge) merge one after the other. A purge may delete the
		// row between the two statements on PostgreSQL: then insert again.
		for attempt := 0; attempt < 3; attempt++ {
			var ignored string
			err := tx.QueryRowContext(ctx, s.d.rebind(`INSERT INTO evidence_coverage (target, edge, from_at, to_at, read_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, edge) DO NOTHING RETURNING target`),
				c.Target, c.Edge, s.d.timeArg(c.From), s.d.timeArg(c.To), s.d.timeArg(c.ReadAt)).Scan(&ignored)
			if err == nil {
				stored = c
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("insert: %w", err)
			}
			old := Coverage{Target: c.Target, Edge: c.Edge}
			err = tx.QueryRowContext(ctx, s.d.rebind(`SELECT from_at, to_at, read_at FROM evidence_coverage
				WHERE target = ? AND edge = ?`+s.d.rowLock), c.Target, c.Edge).Scan(timeColumn{&old.From}, timeColumn{&old.To}, timeColumn{&old.ReadAt})
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			stored = mergeCoverage(old, c)
			if stored == old {
				return nil
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE evidence_coverage SET from_at = ?, to_at = ?, read_at = ?
				WHERE target = ? AND edge = ?`), s.d.timeArg(stored.From), s.d.timeArg(stored.To), s.d.timeArg(stored.ReadAt), c.Target, c.Edge); err != nil {
				return fmt.Errorf("update: %w", err)
			}
			return nil
		}
		return errors.New("stored coverage deleted again and again while merging")
	})
	if err != nil {
		return Coverage{}, fmt.Errorf("add coverage %s/%s: %w", c.Target, c.Edge, err)
	}
	return stored, nil
}

func (s *sqlStore) PurgeEvidence(ctx context.Context, seenBefore time.Time) (int, error) {
	// A zero cutoff would compare with NULL and purge nothing, silently
	// keeping personal data.
	if seenBefore.IsZero() {
		return 0, errors.New("purge evidence: zero cutoff")
	}
	cutoff := s.d.timeArg(seenBefore)
	purged := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Coverage vouches for the actions stored under it: when any of them
		// goes, the coverage of that edge goes too, or a later claim would be
		// judged against a read whose actions are no longer there.
		if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM evidence_coverage WHERE read_at < ?
			OR EXISTS (SELECT 1 FROM evidence e WHERE e.target = evidence_coverage.target
				AND e.edge = evidence_coverage.edge AND e.seen_at < ?)`), cutoff, cutoff); err != nil {
			return fmt.Errorf("coverage: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM evidence WHERE seen_at < ?`), cutoff)
		if err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		purged = int(n)
		// A webhook sighting holds no personal data, but one older than the
		// evidence kept is far past any fed window: the row only costs space.
		if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM webhook_targets WHERE last_at < ?`), cutoff); err != nil {
			return fmt.Errorf("webhook targets: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge evidence: %w", err)
	}
	return purged, nil
}
