// Package store is the task store: tenants, tokens and claims, in PostgreSQL
// (pgx) or in an SQLite file (modernc.org/sqlite), behind one interface.
//
// A claim moves pending → leased → decided. Claiming hands out pending claims
// (and leased ones whose lease expired) under a lease; a leased claim is never
// handed out twice while its lease holds. Recording a verdict is idempotent and
// a decided claim is never decided again, except by an explicit revocation.
// A leased claim whose handling made the engine panic (a poison claim) is
// quarantined instead: out of the queue, undecided, until an operator
// releases it back to pending.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/socialproof/verifier/internal/claim"
)

// Tier of a tenant.
type Tier string

const (
	TierPremium  Tier = "premium"
	TierStandard Tier = "standard"
)

// Account is a Meta account a tenant owns.
type Account struct {
	ID   string      `json:"id"`
	Type AccountType `json:"type"`
}

// AccountType says which Graph API surface an account id belongs to.
type AccountType string

const (
	AccountInstagram AccountType = "instagram" // Instagram professional account (ig-user-id)
	AccountPage      AccountType = "page"      // Facebook Page
)

// Tenant is a brand on the platform.
type Tenant struct {
	ID       string    `json:"id"`
	Tier     Tier      `json:"tier"`
	TokenID  string    `json:"token,omitempty"` // the tenant's own token; empty: the platform token
	Accounts []Account `json:"accounts"`
}

// InstagramAccount returns the tenant's Instagram account id, or "".
func (t Tenant) InstagramAccount() string { return t.account(AccountInstagram) }

// PageAccount returns the tenant's Facebook Page id, or "".
func (t Tenant) PageAccount() string { return t.account(AccountPage) }

func (t Tenant) account(typ AccountType) string {
	for _, a := range t.Accounts {
		if a.Type == typ {
			return a.ID
		}
	}
	return ""
}

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

// ExpiresFirst is when the token stops working: the sooner of ExpiresAt
// and DataAccessExpiresAt (Meta's clock); zero when neither is set.
func (h TokenHealth) ExpiresFirst() time.Time {
	at := h.ExpiresAt
	if d := h.DataAccessExpiresAt; !d.IsZero() && (at.IsZero() || d.Before(at)) {
		at = d
	}
	return at
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

// Claim statuses.
const (
	StatusPending = "pending"
	StatusLeased  = "leased"
	StatusDecided = "decided"
	// StatusQuarantined: a poison claim, taken out of the queue with its
	// reason (Claim.LastError) by Quarantine; never claimed, decided or in
	// the verdict feed until Release puts it back to pending.
	StatusQuarantined = "quarantined"
)

// Verdicts. approved_by_sample and approved_on_honor are provisional until audited.
const (
	VerdictVerified         = "verified"
	VerdictRejected         = "rejected"
	VerdictApprovedBySample = "approved_by_sample"
	VerdictApprovedOnHonor  = "approved_on_honor"
	VerdictRevoked          = "revoked"
	VerdictUnverifiable     = "unverifiable"
)

// MethodAudit is the method a revocation is counted under in VerdictCounts
// (the activities name the other methods).
const MethodAudit = "audit"

// Claim is a stored claim.
type Claim struct {
	ID          int64
	claim.Claim // what was submitted
	SubmittedAt time.Time
	Status      string
	Attempts    int       // how many times it was leased
	NotBefore   time.Time // zero, or: not to be claimed before this time (backoff after a deferral)
	LastError   string    // why the last attempt deferred it, if it did
	LeaseOwner  string
	LeaseExpiry time.Time

	Verdict   string
	Method    string // how the verdict was reached: graph, rule, sample, honor, webhook, ...
	Evidence  string // JSON or text describing the proof, or the absence of proof
	DecidedAt time.Time

	RevokedFrom     string // the verdict before revocation
	RevokedEvidence string
	RevokedAt       time.Time

	// AuditedAt is when an audit confirmed the provisional verdict, or revoked
	// the claim; zero when not audited.
	AuditedAt time.Time

	// FeedSeq is the claim's place in the verdict feed: set when it is
	// decided and again when it is revoked, in commit order; 0 while open.
	FeedSeq int64

	// QuarantinedAt is when the claim was quarantined (its reason is in
	// LastError); zero unless Status is StatusQuarantined.
	QuarantinedAt time.Time
}

// Decision is a verdict for one claim.
type Decision struct {
	ClaimID  int64
	Verdict  string
	Method   string
	Evidence string
}

// Deferral hands a leased claim back to pending, not to be claimed before NotBefore.
type Deferral struct {
	ClaimID   int64
	NotBefore time.Time
	Reason    string
}

// Quarantine takes one leased claim out of the queue: handling it made the
// engine panic. Reason says how (the panic and where), for the operator.
type Quarantine struct {
	ClaimID int64
	Reason  string
}

// SubmitResult reports one submitted claim.
type SubmitResult struct {
	ID        int64
	Duplicate bool // the tenant already submitted this key; nothing was written
}

// Stats counts claims per tenant and status/verdict.
type Stats struct {
	Tenant  string
	Pending int
	Leased  int
	Decided map[string]int // by verdict
	Audited int            // claims with AuditedAt set: confirmed or revoked by an audit
	// Quarantined: poison claims out of the queue, waiting for an operator
	// (neither open nor decided).
	Quarantined int
}

// VerdictCount is how many verdicts of one kind a tenant's claims got by one
// method. Counts only grow: a revocation adds one under VerdictRevoked and
// MethodAudit and leaves the decision it replaced counted.
type VerdictCount struct {
	Tenant  string
	Kind    string
	Method  string
	Verdict string
	N       int64
}

// UserFlag marks a tenant's user as risky until Until: their claims are
// verified one by one, never approved by a sample or on honor.
type UserFlag struct {
	Tenant string
	User   string
	Until  time.Time
	Reason string
}

// ExportFilter selects decided claims for export (Decided), or quarantined
// claims (Quarantined).
type ExportFilter struct {
	Tenant  string // empty: all tenants
	AfterID int64  // only claims with a larger id
	Limit   int    // 0: no limit
}

// EvidenceAction is one action on a Meta object kept as evidence: read from
// the Graph API (a page of comments, tags or reactions) or pushed by a Meta
// webhook. It holds comment text (for claim codes): personal data, purged
// with PurgeEvidence.
type EvidenceAction struct {
	Target   string    // the object acted on: IG media id, Page post id, or the brand's IG user id (tags)
	Edge     string    // "comments", "tags", "reactions", "mentions"
	ActionID string    // comment id, tagged media id, reacting user's id, ...; unique per (Target, Edge)
	Username string    // IG username or Facebook display name
	UserID   string    // IG-scoped or app-scoped user id, when known
	Text     string    // comment text or caption
	Time     time.Time // when the action happened; zero when unknown (reactions)
	Source   string    // "graph" or "webhook"
	Deleted  bool      // a webhook said it was removed
	SeenAt   time.Time // when we last saw it
}

// EvidenceSources.
const (
	SourceGraph   = "graph"
	SourceWebhook = "webhook"
)

// Coverage says a Graph read saw every action on Target's Edge that happened
// in [From, To]: a paged read made at To back to the page older than From.
// From zero means from the beginning (the read reached the last page).
//
// From and To are Meta's times (of actions); ReadAt is ours, when the read
// was made: a claim submitted at S is disproven by coverage read at or
// after S plus the grace delay (Meta's data can lag behind the user). The
// clocks differ in accelerated runs, so the two are never compared.
type Coverage struct {
	Target string
	Edge   string
	From   time.Time
	To     time.Time
	ReadAt time.Time
}

// TenantLoad is one tenant's open claims, counted by target: what the
// Dispatcher needs to claim no more than a tenant's token can decide soon.
type TenantLoad struct {
	Tenant       string
	Ready        int       // claimable now: pending and not deferred past now, or leased with an expired lease
	ReadyTargets int       // distinct targets among Ready
	ReadyFed     int       // of ReadyTargets, those fed by webhooks (see Quota)
	OldestReady  time.Time // submitted_at of the oldest Ready claim (zero when Ready is 0)
	InFlight     int       // leased, lease still holding (expires at or after now)
	// InFlightTargets counts the targets among InFlight once per lease
	// owner: each batch reads its own targets, so two batches holding
	// claims on one target will make two reads.
	InFlightTargets int
}

// Quota bounds what ClaimQuotas leases for one tenant.
//
// A target is fed when a webhook delivered an action on it (any edge) seen at
// or after fedSince, the argument of OpenLoad and ClaimQuotas; a zero
// fedSince counts no target as fed. Claims on a fed target are decided from
// pushed evidence rather than a Graph read, so they cost the token nothing.
type Quota struct {
	Tenant string
	// Targets: lease claims on at most this many targets that are not fed by
	// webhooks, the targets with the oldest ready claim first (ties by target
	// id); claims on fed targets are not bounded by it. Negative: no bound.
	Targets int
}

// MinAPIKeyLength is the shortest platform API key accepted: keys are
// random secrets (starter makes 32 bytes, base64url), never passwords.
const MinAPIKeyLength = 32

// ErrNotFound is returned when a tenant, token or claim does not exist.
var ErrNotFound = errors.New("not found")

// ErrTokenTaken is returned by ConnectToken when the token id belongs to
// another tenant's connection, or to a token of the tenants file that is not
// the connecting tenant's alone: a connection never replaces a token it does
// not own.
var ErrTokenTaken = errors.New("token id taken")

// Store is the task store.
type Store interface {
	// UpsertTenant creates or replaces a tenant.
	UpsertTenant(ctx context.Context, t Tenant) error
	Tenant(ctx context.Context, id string) (Tenant, error)
	Tenants(ctx context.Context) ([]Tenant, error)

	// UpsertToken creates or replaces a token reference: its accounts,
	// budget and SecretRef ("env:NAME" or "file:PATH"; empty only for
	// AppTokenID, whose row holds a budget and no secret). Tenant, Sealed,
	// ConnectedAt and Health are ignored, and an existing row keeps its
	// tenant, sealed value and health: ConnectToken and SetTokenHealth own
	// those.
	UpsertToken(ctx context.Context, t Token) error
	// Token returns a token with every field (Sealed nil when it has no
	// sealed value, Scopes never nil); ErrNotFound when missing.
	Token(ctx context.Context, id string) (Token, error)
	// Tokens lists every token by id, as Token returns them.
	Tokens(ctx context.Context) ([]Token, error)

	// ConnectToken stores a token a tenant connected: t.Tenant and a
	// complete t.Sealed are required and t.SecretRef must be empty. In one
	// transaction it creates or replaces the token's row (accounts, budget,
	// tenant, sealed value, every health column, ConnectedAt; no SecretRef)
	// and makes it the tenant's token (Tenant.TokenID). A new connection
	// replaces whatever the row held, a revoked state included; an empty
	// Health.State is stored as TokenUnknown. ErrNotFound (nothing written)
	// when the tenant does not exist; ErrTokenTaken when the id is another
	// tenant's token, or a token of the tenants file that this tenant did
	// not use or another tenant uses too (a tenant's connection replaces
	// the token the tenants file gave it alone). AppTokenID cannot be
	// connected. Errors never contain the sealed bytes.
	ConnectToken(ctx context.Context, t Token) error

	// SetTokenHealth records a check of a token: every health column. A
	// revoked token stays revoked (state and reason are kept, the other
	// columns written): only the user can undo a revocation, by connecting
	// anew (ConnectToken), and a later check must not resurrect it.
	// ErrNotFound when the token does not exist.
	SetTokenHealth(ctx context.Context, id string, h TokenHealth) error

	// MarkTokenState records a state found outside a check (Meta answered
	// code 190 during verification; the deauthorization callback revoked
	// the token): only state, reason and CheckedAt (at) change. A revoked
	// token stays revoked, as with SetTokenHealth. ErrNotFound when the
	// token does not exist.
	MarkTokenState(ctx context.Context, id string, state TokenState, reason string, at time.Time) error

	// TokensByMetaUser lists the tokens whose last check named this Meta
	// user (Health.MetaUserID), by id: those Meta's deauthorization callback
	// revokes. An empty id is an error (it would name every unchecked token).
	TokensByMetaUser(ctx context.Context, metaUserID string) ([]Token, error)

	// RewrapToken is master-key rotation's compare-and-set: it replaces the
	// token's WrappedKey and MasterKeyID by to's only when the row is still
	// sealed under fromKeyID with to.Ciphertext as its ciphertext, and
	// reports whether it did. False: the token was rewrapped, reconnected or
	// deleted meanwhile (re-read it).
	RewrapToken(ctx context.Context, id string, fromKeyID string, to SealedSecret) (bool, error)

	// Submit stores claims. A (tenant, key) already present is reported as a
	// duplicate and left as it is. Claims must be valid (claim.Validate).
	Submit(ctx context.Context, claims []claim.Claim, now time.Time) ([]SubmitResult, error)

	// Claim leases up to limit claims that are pending (and not deferred past
	// now) or leased with an expired lease, oldest first, to owner until
	// now+ttl. Concurrent callers never receive the same claim.
	Claim(ctx context.Context, owner string, limit int, ttl time.Duration, now time.Time) ([]Claim, error)

	// OpenLoad counts open claims per tenant at now, tenants in id order;
	// tenants without open claims are left out. fedSince: see Quota.
	OpenLoad(ctx context.Context, now, fedSince time.Time) ([]TenantLoad, error)

	// ClaimQuotas leases claims like Claim (same claimability rule, lease to
	// owner until now+ttl, attempts+1), tenant by tenant in the order of quotas,
	// each tenant's claims oldest first (submitted_at, id) within its Quota, until
	// limit claims in all are leased. Tenants not in quotas are not claimed; a
	// tenant twice in quotas is an error. Concurrent callers never receive the
	// same claim. The result is ordered by submitted_at, id.
	ClaimQuotas(ctx context.Context, owner string, quotas []Quota, limit int, fedSince time.Time, ttl time.Duration, now time.Time) ([]Claim, error)

	// ExtendLease moves the lease of the given claims still leased by owner to
	// now+ttl and returns how many it extended.
	ExtendLease(ctx context.Context, owner string, ids []int64, ttl time.Duration, now time.Time) (int, error)

	// BehindReaders returns those of ids whose target has an older open
	// claim (submitted_at, id) of the same tenant and kind (so the same read
	// proves both) leased by another owner
	// with a live lease: that batch reads the target first, and its read (or
	// a short one joined to it) decides these, so they need not queue a read
	// of their own. Ordered by id.
	BehindReaders(ctx context.Context, owner string, ids []int64, now time.Time) ([]int64, error)

	// Feed returns a tenant's claims decided or revoked after feed number
	// after, in feed order (Claim.FeedSeq), at most limit: the platform's
	// verdict feed, a revocation appearing again with its new verdict.
	Feed(ctx context.Context, tenant string, after int64, limit int) ([]Claim, error)
	// AddAPIKey stores the hash of a platform API key for a tenant.
	AddAPIKey(ctx context.Context, tenant, name, key string, now time.Time) error
	// APIKeyTenant returns the tenant an API key belongs to, or ErrNotFound.
	APIKeyTenant(ctx context.Context, key string) (string, error)

	// Claims returns the claims with these ids (missing ids are skipped).
	Claims(ctx context.Context, ids []int64) ([]Claim, error)

	// Decide records verdicts for open claims (pending or leased), whoever
	// holds their lease; a claim already decided, or quarantined, is left as
	// it is. It returns the ids it decided now.
	Decide(ctx context.Context, decisions []Decision, now time.Time) ([]int64, error)

	// Defer returns leased claims held by owner to pending with a backoff.
	// Decided claims are left alone. Returns how many it deferred.
	Defer(ctx context.Context, owner string, deferrals []Deferral) (int, error)

	// Quarantine moves claims leased by owner to StatusQuarantined with their
	// reason (kept in LastError) and now (QuarantinedAt), ending their lease;
	// claims not leased by owner (decided, deferred, another's) are left
	// alone. A quarantined claim is never claimed, decided, counted as open
	// or in the verdict feed until Release. Returns how many it quarantined.
	// An empty owner or reason is an error.
	Quarantine(ctx context.Context, owner string, items []Quarantine, now time.Time) (int, error)

	// Quarantined lists quarantined claims in id order (Tenant, AfterID and
	// Limit as for Decided).
	Quarantined(ctx context.Context, f ExportFilter) ([]Claim, error)

	// Release puts quarantined claims back to pending, claimable at once
	// (their last reason stays in LastError); other claims are left alone.
	// Returns how many it released.
	Release(ctx context.Context, ids []int64) (int, error)

	// Revoke turns a decided claim's verdict into revoked, keeping the earlier
	// verdict in RevokedFrom. A revocation is an audit outcome: it sets
	// AuditedAt to now, which takes the claim out of the audit queue. Revoking
	// twice is harmless. Returns false if the claim is not decided or already
	// revoked.
	Revoke(ctx context.Context, id int64, evidence string, now time.Time) (bool, error)

	// Stats counts claims per tenant, sorted by tenant id.
	Stats(ctx context.Context) ([]Stats, error)

	// VerdictCounts returns every verdict counter, sorted by tenant, kind,
	// method and verdict. Decide and Revoke keep them in their transactions.
	VerdictCounts(ctx context.Context) ([]VerdictCount, error)

	// Decided lists decided claims in id order, for export.
	Decided(ctx context.Context, f ExportFilter) ([]Claim, error)

	// FlagUsers records flags; a user already flagged keeps the later Until
	// (and that flag's reason).
	FlagUsers(ctx context.Context, flags []UserFlag) error

	// RiskyUsers returns which of users (of tenant) are flagged with Until
	// after now, sorted, without duplicates.
	RiskyUsers(ctx context.Context, tenant string, users []string, now time.Time) ([]string, error)

	// AuditQueue returns up to limit provisional claims (verdict
	// approved_by_sample or approved_on_honor) not yet audited and decided at
	// or before decidedBefore, oldest decision first (decided_at, then id).
	AuditQueue(ctx context.Context, limit int, decidedBefore time.Time) ([]Claim, error)

	// MarkAudited records that an audit confirmed these provisional claims
	// (their verdict stays); claims not provisional or already audited are
	// left alone. Returns how many it marked.
	MarkAudited(ctx context.Context, ids []int64, now time.Time) (int, error)

	// SaveEvidence upserts actions by (Target, Edge, ActionID). A later sighting
	// replaces username, user id, text, time (only when the new time is not zero),
	// deleted and seen_at (an edit changes the text, a removal marks it deleted,
	// a Graph read of an action that was marked deleted un-deletes it); the
	// first Source is kept. Duplicates within one call are allowed (the last
	// wins). An action with Source SourceWebhook also records that webhooks
	// feed its target (see Quota) as of its SeenAt, unless a later webhook
	// sighting is recorded. It returns how many actions were new. Actions with
	// an empty Target, Edge or ActionID are an error, and so are a Source
	// other than SourceGraph or SourceWebhook and a zero SeenAt (the purge
	// could never delete it).
	SaveEvidence(ctx context.Context, actions []EvidenceAction) (int, error)

	// Evidence returns what is stored on these targets (every edge): the
	// actions, ordered by target, edge, then time descending (newest first;
	// zero times last), then action id; and the coverage, ordered by target
	// then edge. Both are read in one snapshot, so a coverage never vouches
	// for an action missing from the actions, provided a read's actions are
	// saved before its coverage is added.
	Evidence(ctx context.Context, targets []string) ([]EvidenceAction, []Coverage, error)

	// AddCoverage records a read. When the stored coverage of (Target, Edge)
	// overlaps or touches the new one (new.From <= old.To and old.From <= new.To,
	// a zero From being the earliest time), they merge into [min From, max To]
	// with the later ReadAt; otherwise the one read later is kept. It returns
	// the coverage stored now. An empty Target or Edge, a zero To or ReadAt, or
	// a From after To is an error.
	AddCoverage(ctx context.Context, c Coverage) (Coverage, error)

	// PurgeEvidence deletes actions last seen before the cutoff (personal
	// data is kept no longer than needed), coverage read before it, the
	// coverage of every edge that lost an action (coverage vouches for the
	// actions under it), and the webhook sightings of targets (see Quota)
	// last made before it. It returns how many actions it deleted. A zero
	// cutoff is an error.
	PurgeEvidence(ctx context.Context, seenBefore time.Time) (int, error)

	Close() error
}
