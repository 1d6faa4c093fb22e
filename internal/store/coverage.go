package store

// Coverage: the spans of actions a Graph read saw whole, merged read after
// read.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// coverages reads the coverage stored on targets (unique), by target then edge.
func (s *sqlStore) coverages(ctx context.Context, tx *sql.Tx, targets []string) ([]Coverage, error) {
	var coverages []Coverage
	for _, chunk := range chunks(targets, idChunk) {
		rows, err := tx.QueryContext(ctx, s.d.rebind(`SELECT target, edge, from_at, to_at, read_at FROM evidence_coverage
			WHERE target IN `+inList(len(chunk))), stringArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
		got, err := collect(rows, func(r scanner) (c Coverage, err error) {
			return c, r.Scan(&c.Target, &c.Edge, timeColumn{&c.From}, timeColumn{&c.To}, timeColumn{&c.ReadAt})
		})
		if err != nil {
			return nil, fmt.Errorf("coverage: %w", err)
		}
		coverages = append(coverages, got...)
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

func (s *sqlStore) AddCoverage(ctx context.Context, c Coverage) (Coverage, error) {
	c, err := checkCoverage(c)
	if err != nil {
		return Coverage{}, err
	}
	var stored Coverage
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		stored, err = s.addCoverageTx(ctx, tx, c)
		return err
	})
	if err != nil {
		return Coverage{}, fmt.Errorf("add coverage %s/%s: %w", c.Target, c.Edge, err)
	}
	return stored, nil
}

// checkCoverage returns c at the stored precision, or what AddCoverage
// refuses it for.
func checkCoverage(c Coverage) (Coverage, error) {
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
	return c, nil
}

// addCoverageTx is AddCoverage in tx, for c as checkCoverage returns it.
// It returns the coverage stored now.
func (s *sqlStore) addCoverageTx(ctx context.Context, tx *sql.Tx, c Coverage) (Coverage, error) {
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
			return c, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return Coverage{}, fmt.Errorf("insert: %w", err)
		}
		old := Coverage{Target: c.Target, Edge: c.Edge}
		err = tx.QueryRowContext(ctx, s.d.rebind(`SELECT from_at, to_at, read_at FROM evidence_coverage
			WHERE target = ? AND edge = ?`+s.d.rowLock), c.Target, c.Edge).Scan(timeColumn{&old.From}, timeColumn{&old.To}, timeColumn{&old.ReadAt})
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return Coverage{}, fmt.Errorf("read: %w", err)
		}
		stored := mergeCoverage(old, c)
		if stored == old {
			return stored, nil
		}
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE evidence_coverage SET from_at = ?, to_at = ?, read_at = ?
			WHERE target = ? AND edge = ?`), s.d.timeArg(stored.From), s.d.timeArg(stored.To), s.d.timeArg(stored.ReadAt), c.Target, c.Edge); err != nil {
			return Coverage{}, fmt.Errorf("update: %w", err)
		}
		return stored, nil
	}
	return Coverage{}, errors.New("stored coverage deleted again and again while merging")
}
