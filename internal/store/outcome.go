package store

// Outcomes: what one verification or audit chunk found, written in one
// transaction by the helpers behind SaveEvidence, AddCoverage, Quarantine,
// Decide, MarkAudited, Revoke and FlagUsers.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Outcome is what one verification or audit chunk found. RecordOutcome
// writes all of it or none of it.
type Outcome struct {
	// Now is decided_at, quarantined_at, audited_at and revoked_at. Required
	// (non-zero) unless the outcome is empty.
	Now time.Time

	// Evidence are the actions the chunk's reads saw, stored as SaveEvidence
	// stores them, before the coverage below (see Store.Evidence).
	Evidence []EvidenceAction
	// Coverages are the spans those reads covered, merged as AddCoverage
	// merges them, in order.
	Coverages []Coverage

	// Decisions are recorded as Decide records them: open claims only.
	Decisions []Decision

	// QuarantineOwner is the lease owner of the claims in Quarantine;
	// required when Quarantine is not empty.
	QuarantineOwner string
	// Quarantine takes poison claims out of the queue as Quarantine does:
	// only claims leased by QuarantineOwner.
	Quarantine []Quarantine

	// Confirmed are provisional claims an audit confirmed, marked as
	// MarkAudited marks them.
	Confirmed []int64
	// Revoked are revocations, one per claim, made as Revoke makes them.
	Revoked []Revocation

	// RiskUntil, when not zero, flags as risky until then (as FlagUsers: a
	// later Until already stored wins) the user of every claim this call
	// rejected (a Decision with VerdictRejected that took effect) or
	// revoked, with the reason "claim <tenant>/<key> found false". A claim
	// decided before the call, or verified, flags nobody.
	RiskUntil time.Time
}

// OutcomeResult is what RecordOutcome wrote.
type OutcomeResult struct {
	Decided     []int64 // ids this call decided, in the order of Decisions (as Decide returns them)
	Quarantined int     // claims quarantined (as Quarantine counts them)
	Confirmed   int     // claims marked audited (as MarkAudited counts them)
	Revoked     []int64 // ids this call revoked, in the order of Revoked
	Flagged     int     // users flagged: distinct tenant and user
}

// empty reports whether o has nothing to write.
func (o Outcome) empty() bool {
	return len(o.Evidence) == 0 && len(o.Coverages) == 0 && len(o.Decisions) == 0 &&
		len(o.Quarantine) == 0 && len(o.Confirmed) == 0 && len(o.Revoked) == 0
}

// Outcome steps, in the order RecordOutcome takes them; afterOutcomeStep
// names them.
const (
	stepEvidence   = "evidence"
	stepCoverage   = "coverage"
	stepQuarantine = "quarantine"
	stepDecide     = "decide"
	stepAudit      = "audit"
	stepRevoke     = "revoke"
	stepCounts     = "counts"
	stepFlags      = "flags"
)

func (s *sqlStore) RecordOutcome(ctx context.Context, o Outcome) (OutcomeResult, error) {
	if o.empty() {
		return OutcomeResult{}, nil
	}
	coverages, err := checkOutcome(o)
	if err != nil {
		return OutcomeResult{}, fmt.Errorf("record outcome: %w", err)
	}
	var res OutcomeResult
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.recordOutcomeTx(ctx, tx, o, coverages)
		return err
	})
	if err != nil {
		return OutcomeResult{}, fmt.Errorf("record outcome: %w", err)
	}
	return res, nil
}

// checkOutcome refuses, before anything is written, what the methods
// RecordOutcome stands for would refuse. It returns the coverages at the
// stored precision (checkCoverage).
func checkOutcome(o Outcome) ([]Coverage, error) {
	if o.Now.IsZero() {
		return nil, errors.New("zero now")
	}
	if err := checkEvidence(o.Evidence); err != nil {
		return nil, fmt.Errorf("save evidence: %w", err)
	}
	coverages := make([]Coverage, len(o.Coverages))
	for i, c := range o.Coverages {
		var err error
		if coverages[i], err = checkCoverage(c); err != nil {
			return nil, fmt.Errorf("coverage %d: %w", i, err)
		}
	}
	if err := checkDecisions(o.Decisions); err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	if len(o.Quarantine) > 0 {
		if err := checkQuarantine(o.QuarantineOwner, o.Quarantine); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
	}
	return coverages, nil
}

// recordOutcomeTx writes o in tx, its coverages checked. The order is that
// of the separate calls the activities made: evidence, then its coverage
// (so a snapshot never holds a coverage without its actions, whatever the
// isolation), quarantine, decisions, audit confirmations, revocations, the
// verdict counters of the decisions and revocations, and the risk flags of
// the claims found false. The feed numbers are reserved as Decide and then
// Revoke reserve them.
func (s *sqlStore) recordOutcomeTx(ctx context.Context, tx *sql.Tx, o Outcome, coverages []Coverage) (OutcomeResult, error) {
	var res OutcomeResult
	if len(o.Evidence) > 0 {
		if _, err := s.saveEvidenceTx(ctx, tx, o.Evidence); err != nil {
			return res, fmt.Errorf("save evidence: %w", err)
		}
	}
	if err := s.outcomeStep(stepEvidence); err != nil {
		return res, err
	}

	// In (target, edge) order, so concurrent outcomes lock coverage rows in
	// one order (PostgreSQL). The sort is stable: coverages of one (target,
	// edge) keep their order, the only order a merge depends on.
	slices.SortStableFunc(coverages, func(a, b Coverage) int {
		return cmp.Or(strings.Compare(a.Target, b.Target), strings.Compare(a.Edge, b.Edge))
	})
	for _, c := range coverages {
		if _, err := s.addCoverageTx(ctx, tx, c); err != nil {
			return res, fmt.Errorf("add coverage %s/%s: %w", c.Target, c.Edge, err)
		}
	}
	if err := s.outcomeStep(stepCoverage); err != nil {
		return res, err
	}

	if len(o.Quarantine) > 0 {
		n, err := s.quarantineTx(ctx, tx, o.QuarantineOwner, o.Quarantine, o.Now)
		if err != nil {
			return res, fmt.Errorf("quarantine: %w", err)
		}
		res.Quarantined = n
	}
	if err := s.outcomeStep(stepQuarantine); err != nil {
		return res, err
	}

	counts := map[VerdictCount]int64{}
	decided, err := s.decideTx(ctx, tx, o.Decisions, o.Now, counts)
	if err != nil {
		return res, fmt.Errorf("decide: %w", err)
	}
	res.Decided = changedIDs(decided)
	var falseClaims []changedClaim
	for _, c := range decided {
		if c.verdict == VerdictRejected {
			falseClaims = append(falseClaims, c)
		}
	}
	if err := s.outcomeStep(stepDecide); err != nil {
		return res, err
	}

	if len(o.Confirmed) > 0 {
		if res.Confirmed, err = s.markAuditedTx(ctx, tx, o.Confirmed, o.Now); err != nil {
			return res, fmt.Errorf("mark audited: %w", err)
		}
	}
	if err := s.outcomeStep(stepAudit); err != nil {
		return res, err
	}

	for _, r := range o.Revoked {
		c, revoked, err := s.revokeTx(ctx, tx, r, o.Now, counts)
		if err != nil {
			return res, fmt.Errorf("revoke claim %d: %w", r.ClaimID, err)
		}
		if revoked {
			res.Revoked = append(res.Revoked, c.id)
			falseClaims = append(falseClaims, c)
		}
	}
	if err := s.outcomeStep(stepRevoke); err != nil {
		return res, err
	}

	if err := s.addVerdictCounts(ctx, tx, counts); err != nil {
		return res, err
	}
	if err := s.outcomeStep(stepCounts); err != nil {
		return res, err
	}

	if !o.RiskUntil.IsZero() {
		var flags []UserFlag
		for _, c := range falseClaims {
			if c.user == "" {
				continue // Submit refuses such claims: none but a hand-written row
			}
			flags = append(flags, UserFlag{Tenant: c.tenant, User: c.user, Until: o.RiskUntil,
				Reason: fmt.Sprintf("claim %s/%s found false", c.tenant, c.key)})
		}
		if len(flags) > 0 {
			if res.Flagged, err = s.flagUsersTx(ctx, tx, flags); err != nil {
				return res, fmt.Errorf("flag users: %w", err)
			}
		}
	}
	if err := s.outcomeStep(stepFlags); err != nil {
		return res, err
	}
	return res, nil
}

// outcomeStep runs the test hook after a step of recordOutcomeTx: an error
// from it fails the outcome there.
func (s *sqlStore) outcomeStep(step string) error {
	if s.afterOutcomeStep == nil {
		return nil
	}
	if err := s.afterOutcomeStep(step); err != nil {
		return fmt.Errorf("after %s: %w", step, err)
	}
	return nil
}
