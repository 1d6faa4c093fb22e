package webhook

import (
	"context"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// StoreSink keeps webhook actions as evidence in the task store, where a
// claim's check finds them before it spends a call.
type StoreSink struct {
	Store store.Store
	Now   func() time.Time // nil: time.Now
}

// SaveActions stores the actions; a redelivered one is not new.
func (s StoreSink) SaveActions(ctx context.Context, actions []Action) (int, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	out := make([]store.EvidenceAction, len(actions))
	for i, a := range actions {
		out[i] = store.EvidenceAction{
			Target: a.Target, Edge: a.Edge, ActionID: a.ActionID, Username: a.Username, UserID: a.UserID,
			Text: a.Text, Time: a.Time, Deleted: a.Deleted, Source: store.SourceWebhook, SeenAt: now,
		}
	}
	return s.Store.SaveEvidence(ctx, out)
}
