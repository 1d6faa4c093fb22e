package activities

import (
	"context"
	"fmt"
	"time"
)

// PurgeInput says how long stored evidence is kept (wall time).
type PurgeInput struct {
	Retention time.Duration
}

// PurgeEvidence deletes stored evidence (comment texts, usernames) last seen
// longer ago than the retention, and the coverage that vouched for it.
func (a *Activities) PurgeEvidence(ctx context.Context, in PurgeInput) (int, error) {
	if in.Retention <= 0 {
		return 0, fmt.Errorf("purge evidence: retention must be positive, got %v", in.Retention)
	}
	n, err := a.Store.PurgeEvidence(ctx, a.now().Add(-in.Retention))
	if err != nil {
		return 0, fmt.Errorf("purge evidence: %w", err)
	}
	return n, nil
}
