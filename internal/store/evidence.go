package store

// Evidence: actions on Meta objects read from the Graph API or pushed by
// webhooks, kept to decide later claims, and purged when old.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	if err := checkEvidence(actions); err != nil {
		return 0, fmt.Errorf("save evidence: %w", err)
	}
	var added int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = s.saveEvidenceTx(ctx, tx, actions)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("save evidence: %w", err)
	}
	return added, nil
}

// checkEvidence refuses the actions SaveEvidence refuses.
func checkEvidence(actions []EvidenceAction) error {
	for i, a := range actions {
		switch {
		case a.Target == "":
			return fmt.Errorf("action %d: empty target", i)
		case a.Edge == "":
			return fmt.Errorf("action %d (target %s): empty edge", i, a.Target)
		case a.ActionID == "":
			return fmt.Errorf("action %d (%s/%s): empty action id", i, a.Target, a.Edge)
		case a.Source != SourceGraph && a.Source != SourceWebhook:
			return fmt.Errorf("action %d (%s/%s/%s): source %q is neither %s nor %s",
				i, a.Target, a.Edge, a.ActionID, a.Source, SourceGraph, SourceWebhook)
		case a.SeenAt.IsZero():
			// A NULL seen_at would never be purged.
			return fmt.Errorf("action %d (%s/%s/%s): zero seen_at", i, a.Target, a.Edge, a.ActionID)
		}
	}
	return nil
}

// saveEvidenceTx is SaveEvidence in tx, for actions checkEvidence accepts.
// It returns how many actions were new.
func (s *sqlStore) saveEvidenceTx(ctx context.Context, tx *sql.Tx, actions []EvidenceAction) (int, error) {
	// PostgreSQL refuses an upsert that touches a row twice, so an action
	// repeated in the call is folded here into what saving the repeats one
	// after the other would store.
	folded := make(map[evidenceKey]EvidenceAction, len(actions))
	for _, a := range actions {
		a = withoutNUL(a)
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
			return 0, fmt.Errorf("insert: %w", err)
		}
		got, err := collect(rows, func(r scanner) (k evidenceKey, err error) {
			return k, r.Scan(&k.target, &k.edge, &k.action)
		})
		if err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
		for _, k := range got {
			inserted[k] = true
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
			return 0, fmt.Errorf("update: %w", err)
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
			return 0, fmt.Errorf("webhook targets: %w", err)
		}
	}
	return len(inserted), nil
}

// withoutNUL returns a with every NUL byte of its free text (Username,
// UserID, Text) replaced by U+FFFD, on both databases: PostgreSQL cannot
// store a NUL in text, and one odd comment read from the Graph API must not
// fail the save of a whole read. (The webhook parser replaces them on its
// side already.)
func withoutNUL(a EvidenceAction) EvidenceAction {
	a.Username = strings.ReplaceAll(a.Username, "\x00", "\uFFFD")
	a.UserID = strings.ReplaceAll(a.UserID, "\x00", "\uFFFD")
	a.Text = strings.ReplaceAll(a.Text, "\x00", "\uFFFD")
	return a
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
		// Unlike a poison claim, an unreadable action fails the read:
		// skipping it would make a proof look absent.
		got, err := collect(rows, scanEvidence)
		if err != nil {
			return nil, fmt.Errorf("actions: %w", err)
		}
		actions = append(actions, got...)
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

func (s *sqlStore) PurgeEvidence(ctx context.Context, seenBefore time.Time) (int, error) {
	// A zero cutoff would compare with NULL and purge nothing, silently
	// keeping personal data.
	if seenBefore.IsZero() {
		return 0, errors.New("purge evidence: zero cutoff")
	}
	cutoff := s.d.timeArg(seenBefore)
	purged := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Actions first, then coverage: the order RecordOutcome writes them
		// in, so the two never wait on each other's locks (PostgreSQL would
		// abort one as a deadlock).
		rows, err := tx.QueryContext(ctx, s.d.rebind(`DELETE FROM evidence WHERE seen_at < ? RETURNING target, edge`), cutoff)
		if err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		type edgeKey struct{ target, edge string }
		deleted, err := collect(rows, func(r scanner) (k edgeKey, err error) { return k, r.Scan(&k.target, &k.edge) })
		if err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		purged = len(deleted)
		var lost []edgeKey
		seen := map[edgeKey]bool{}
		for _, k := range deleted {
			if !seen[k] {
				seen[k] = true
				lost = append(lost, k)
			}
		}
		// Coverage vouches for the actions stored under it: when any of them
		// goes, the coverage of that edge goes too, or a later claim would be
		// judged against a read whose actions are no longer there.
		if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM evidence_coverage WHERE read_at < ?`), cutoff); err != nil {
			return fmt.Errorf("coverage: %w", err)
		}
		for _, part := range chunks(lost, 200) {
			conds := make([]string, len(part))
			args := make([]any, 0, 2*len(part))
			for i, k := range part {
				conds[i] = "(target = ? AND edge = ?)"
				args = append(args, k.target, k.edge)
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`DELETE FROM evidence_coverage WHERE `+strings.Join(conds, " OR ")), args...); err != nil {
				return fmt.Errorf("coverage: %w", err)
			}
		}
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
