package store

// Quarantine: poison claims taken out of the queue, listed for operators,
// and released back to pending.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Quarantine takes one leased claim out of the queue: handling it made the
// engine panic. Reason says how (the panic and where), for the operator.
type Quarantine struct {
	ClaimID int64
	Reason  string
}

func (s *sqlStore) Quarantine(ctx context.Context, owner string, items []Quarantine, now time.Time) (int, error) {
	if err := checkQuarantine(owner, items); err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
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
		var err error
		quarantined, err = s.quarantineTx(ctx, tx, owner, items, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
	}
	return quarantined, nil
}

// checkQuarantine refuses what Quarantine refuses whatever the items: an
// empty owner, and an item without a reason.
func checkQuarantine(owner string, items []Quarantine) error {
	if owner == "" {
		return errors.New("empty lease owner")
	}
	for i, q := range items {
		if q.Reason == "" {
			return fmt.Errorf("item %d (claim %d): empty reason", i, q.ClaimID)
		}
	}
	return nil
}

// quarantineTx is Quarantine in tx, for an owner and items checkQuarantine
// accepts and a non-zero now. It returns how many it quarantined.
func (s *sqlStore) quarantineTx(ctx context.Context, tx *sql.Tx, owner string, items []Quarantine, now time.Time) (int, error) {
	stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
		SET status = 'quarantined', last_error = ?, quarantined_at = ?, lease_owner = '', lease_expires_at = NULL
		WHERE id = ? AND status = 'leased' AND lease_owner = ?`))
	if err != nil {
		return 0, err
	}
	defer stmt.Close()
	at := s.d.timeArg(now)
	quarantined := 0
	for _, q := range items {
		res, err := stmt.ExecContext(ctx, q.Reason, at, q.ClaimID, owner)
		if err != nil {
			return 0, fmt.Errorf("claim %d: %w", q.ClaimID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("claim %d: %w", q.ClaimID, err)
		}
		quarantined += int(n)
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
