package store

// Audit: provisional verdicts awaiting an audit, and the audits that
// confirm them.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

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
	marked := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		marked, err = s.markAuditedTx(ctx, tx, ids, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark audited: %w", err)
	}
	return marked, nil
}

// markAuditedTx is MarkAudited in tx, for a non-zero now. It returns how
// many claims it marked.
func (s *sqlStore) markAuditedTx(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time) (int, error) {
	auditedAt := s.d.timeArg(now)
	marked := 0
	for _, chunk := range chunks(ids, idChunk) {
		args := append([]any{auditedAt}, idArgs(chunk)...)
		res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE claims SET audited_at = ?
			WHERE `+provisionalUnaudited+` AND id IN `+inList(len(chunk))), args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		marked += int(n)
	}
	return marked, nil
}
