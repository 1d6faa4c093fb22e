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

// ErrNotFound is returned when a tenant, token or claim does not exist.
var ErrNotFound = errors.New("not found")

// ErrTokenTaken is returned by ConnectToken when the token id belongs to
// another tenant's connection, or to a token of the tenants file that is not
// the connecting tenant's alone: a connection never replaces a token it does
// not own.
var ErrTokenTaken = errors.New("token id taken")

// Store is the task store. Its methods come in groups by concern, each
// group implemented, with its types, in the file its heading names.
type Store interface {
	// ---- Tenants (tenants.go) ----

	// UpsertTenant creates or replaces a tenant.
	UpsertTenant(ctx context.Context, t Tenant) error
	Tenant(ctx context.Context, id string) (Tenant, error)
	Tenants(ctx context.Context) ([]Tenant, error)

	// ---- Tokens (tokens.go) ----

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
	// the token): only the state, its reason and CheckedAt (m.At) of token
	// m.ID change. A revoked token stays revoked, as with SetTokenHealth.
	// ErrNotFound when the token does not exist.
	MarkTokenState(ctx context.Context, m TokenMark) error

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

	// ---- Claims (claims.go) ----

	// Submit stores claims. A (tenant, key) already present is reported as a
	// duplicate and left as it is. Claims must be valid (claim.Validate).
	Submit(ctx context.Context, claims []claim.Claim, now time.Time) ([]SubmitResult, error)

	// Claims returns the claims with these ids (missing ids are skipped).
	Claims(ctx context.Context, ids []int64) ([]Claim, error)

	// ---- Leases (leases.go) ----

	// Claim leases up to p.Limit claims that are pending (and not deferred
	// past p.Now) or leased with an expired lease, oldest first, to p.Owner
	// until p.Now+p.TTL. Concurrent callers never receive the same claim.
	Claim(ctx context.Context, p ClaimParams) ([]Claim, error)

	// OpenLoad counts open claims per tenant at now, tenants in id order;
	// tenants without open claims are left out. fedSince: see Quota.
	OpenLoad(ctx context.Context, now, fedSince time.Time) ([]TenantLoad, error)

	// ClaimQuotas leases claims like Claim (same claimability rule, lease to
	// p.Owner until p.Now+p.TTL, attempts+1), tenant by tenant in the order of
	// p.Quotas, each tenant's claims oldest first (submitted_at, id) within its
	// Quota, until p.Limit claims in all are leased. Tenants not in p.Quotas
	// are not claimed; a tenant twice in it is an error. Concurrent callers
	// never receive the same claim. The result is ordered by submitted_at, id.
	ClaimQuotas(ctx context.Context, p ClaimQuotasParams) ([]Claim, error)

	// ExtendLease moves the lease of the claims e.ClaimIDs still leased by
	// e.Owner to e.Now+e.TTL and returns how many it extended.
	ExtendLease(ctx context.Context, e LeaseExtension) (int, error)

	// BehindReaders returns those of ids whose target has an older open
	// claim (submitted_at, id) of the same tenant and kind (so the same read
	// proves both) leased by another owner
	// with a live lease: that batch reads the target first, and its read (or
	// a short one joined to it) decides these, so they need not queue a read
	// of their own. Ordered by id.
	BehindReaders(ctx context.Context, owner string, ids []int64, now time.Time) ([]int64, error)

	// ---- Decisions (decisions.go) ----

	// Decide records verdicts for open claims (pending or leased), whoever
	// holds their lease; a claim already decided, or quarantined, is left as
	// it is. It returns the ids it decided now.
	Decide(ctx context.Context, decisions []Decision, now time.Time) ([]int64, error)

	// Feed returns a tenant's claims decided or revoked after feed number
	// after, in feed order (Claim.FeedSeq), at most limit: the platform's
	// verdict feed, a revocation appearing again with its new verdict.
	Feed(ctx context.Context, tenant string, after int64, limit int) ([]Claim, error)

	// Defer returns leased claims held by owner to pending with a backoff.
	// Decided claims are left alone. Returns how many it deferred.
	Defer(ctx context.Context, owner string, deferrals []Deferral) (int, error)

	// Revoke turns a decided claim's verdict into revoked, keeping the earlier
	// verdict in RevokedFrom. A revocation is an audit outcome: it sets
	// AuditedAt to now, which takes the claim out of the audit queue. Revoking
	// twice is harmless. Returns false if the claim is not decided or already
	// revoked.
	Revoke(ctx context.Context, id int64, evidence string, now time.Time) (bool, error)

	// Stats counts claims per tenant, sorted by tenant id.
	Stats(ctx context.Context) ([]Stats, error)

	// VerdictCounts returns every verdict counter, sorted by tenant, kind,
	// method and verdict. Decide, Revoke and RecordOutcome keep them in
	// their transactions.
	VerdictCounts(ctx context.Context) ([]VerdictCount, error)

	// Decided lists decided claims in id order, for export.
	Decided(ctx context.Context, f ExportFilter) ([]Claim, error)

	// ---- Quarantine (quarantine.go) ----

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

	// ---- Platform API keys (apikeys.go) ----

	// AddAPIKey stores the hash of a platform API key (k.Key) for tenant
	// k.Tenant under k.Name, created at k.Now. The key needs at least
	// MinAPIKeyLength characters; errors never contain it.
	AddAPIKey(ctx context.Context, k APIKey) error

	// APIKeyTenant returns the tenant an API key belongs to, or ErrNotFound.
	APIKeyTenant(ctx context.Context, key string) (string, error)

	// ---- User risk (risk.go) ----

	// FlagUsers records flags; a user already flagged keeps the later Until
	// (and that flag's reason).
	FlagUsers(ctx context.Context, flags []UserFlag) error

	// RiskyUsers returns which of users (of tenant) are flagged with Until
	// after now, sorted, without duplicates.
	RiskyUsers(ctx context.Context, tenant string, users []string, now time.Time) ([]string, error)

	// ---- Audit (audit.go) ----

	// AuditQueue returns up to limit provisional claims (verdict
	// approved_by_sample or approved_on_honor) not yet audited and decided at
	// or before decidedBefore, oldest decision first (decided_at, then id).
	AuditQueue(ctx context.Context, limit int, decidedBefore time.Time) ([]Claim, error)

	// MarkAudited records that an audit confirmed these provisional claims
	// (their verdict stays); claims not provisional or already audited are
	// left alone. Returns how many it marked.
	MarkAudited(ctx context.Context, ids []int64, now time.Time) (int, error)

	// ---- Evidence (evidence.go, coverage.go) ----

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
	// could never delete it). A NUL byte in Username, UserID or Text is
	// stored as U+FFFD, on both databases (PostgreSQL cannot store one).
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

	// ---- Outcomes (outcome.go) ----

	// RecordOutcome writes what one verification or audit chunk found, in one
	// transaction: either all of it is stored or none. Each part is written
	// as the method it stands for writes it (see Outcome), in this order:
	// the evidence, then its coverage, the quarantine, the decisions, the
	// audit confirmations, the revocations, then the risk flags of the
	// claims this call found false. What those methods refuse (an evidence
	// action or coverage SaveEvidence or AddCoverage refuses, a decision
	// without a verdict, a quarantine without an owner or a reason) and a
	// zero o.Now fail the call with nothing written. An empty outcome (no
	// evidence, coverage, decision, quarantine, confirmation or revocation)
	// writes nothing and succeeds.
	RecordOutcome(ctx context.Context, o Outcome) (OutcomeResult, error)

	Close() error
}
