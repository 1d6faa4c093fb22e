package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// ExportedClaim is one line of `starter export`.
type ExportedClaim struct {
	ID              int64           `json:"id"`
	Tenant          string          `json:"tenant"`
	Key             string          `json:"key"`
	User            string          `json:"user"`
	Kind            string          `json:"kind"`
	Target          string          `json:"target"`
	Status          string          `json:"status"`
	Verdict         string          `json:"verdict"`
	Method          string          `json:"method"`
	Evidence        json.RawMessage `json:"evidence,omitempty"`
	SubmittedAt     time.Time       `json:"submitted_at"`
	DecidedAt       time.Time       `json:"decided_at"`
	RevokedFrom     string          `json:"revoked_from,omitempty"`
	RevokedEvidence json.RawMessage `json:"revoked_evidence,omitempty"`
	RevokedAt       *time.Time      `json:"revoked_at,omitempty"`
	AuditedAt       *time.Time      `json:"audited_at,omitempty"` // an audit checked this provisional approval
}

const exportPage = 1000

func export(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("export")
	tenant := c.fs.String("tenant", "", "only this tenant")
	after := c.fs.Int64("after", 0, "only claims with an id above this (resume a previous export)")
	limit := c.fs.Int("limit", 0, "at most this many claims; 0 for all")
	if err := c.parse(args); err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	written := 0
	for cursor := *after; *limit == 0 || written < *limit; {
		page := exportPage
		if *limit > 0 {
			page = min(page, *limit-written)
		}
		claims, err := st.Decided(ctx, store.ExportFilter{Tenant: *tenant, AfterID: cursor, Limit: page})
		if err != nil {
			return err
		}
		for _, cl := range claims {
			if err := enc.Encode(exported(cl)); err != nil {
				return err
			}
			cursor = cl.ID
		}
		written += len(claims)
		if len(claims) < page {
			break
		}
	}
	return nil
}

func exported(c store.Claim) ExportedClaim {
	e := ExportedClaim{
		ID: c.ID, Tenant: c.Tenant, Key: c.Key, User: c.User, Kind: string(c.Kind), Target: c.Target,
		Status: c.Status, Verdict: c.Verdict, Method: c.Method, Evidence: rawJSON(c.Evidence),
		SubmittedAt: c.SubmittedAt, DecidedAt: c.DecidedAt, RevokedFrom: c.RevokedFrom,
		RevokedEvidence: rawJSON(c.RevokedEvidence),
	}
	if !c.RevokedAt.IsZero() {
		t := c.RevokedAt
		e.RevokedAt = &t
	}
	if !c.AuditedAt.IsZero() {
		t := c.AuditedAt
		e.AuditedAt = &t
	}
	return e
}

// rawJSON keeps evidence that is JSON as an object and quotes anything else.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}
