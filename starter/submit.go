package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

// SubmitSummary is printed as one JSON object on stdout.
type SubmitSummary struct {
	Accepted   int               `json:"accepted"`
	Duplicates int               `json:"duplicates"`
	Refused    []claim.LineError `json:"refused"`
}

const submitChunk = 1000

func submit(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCommand("submit")
	file := c.fs.String("file", "-", "JSON Lines file of claims; - for stdin")
	strict := c.fs.Bool("strict", false, "exit with status 3 when any line is refused")
	if err := c.parse(args); err != nil {
		return err
	}
	in := stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	sum, err := submitClaims(ctx, st, in, time.Now().UTC())
	if err != nil {
		return err
	}
	for _, r := range sum.Refused {
		fmt.Fprintln(stderr, "refused", r.Error())
	}
	if err := json.NewEncoder(stdout).Encode(sum); err != nil {
		return err
	}
	if *strict && len(sum.Refused) > 0 {
		return exitError(3)
	}
	return nil
}

// submitClaims parses, refuses claims for unknown tenants, and stores the rest.
func submitClaims(ctx context.Context, st store.Store, in io.Reader, now time.Time) (SubmitSummary, error) {
	sum := SubmitSummary{Refused: []claim.LineError{}}
	lines, refused, err := claim.ReadLines(in)
	if err != nil {
		return sum, err
	}
	sum.Refused = append(sum.Refused, refused...)
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return sum, err
	}
	known := map[string]bool{}
	for _, t := range tenants {
		known[t.ID] = true
	}
	var batch []claim.Claim
	for _, l := range lines {
		if !known[l.Claim.Tenant] {
			sum.Refused = append(sum.Refused, claim.LineError{Line: l.Line, Reason: fmt.Sprintf("unknown tenant %q", l.Claim.Tenant)})
			continue
		}
		batch = append(batch, l.Claim)
	}
	sortRefused(sum.Refused)
	for start := 0; start < len(batch); start += submitChunk {
		res, err := st.Submit(ctx, batch[start:min(start+submitChunk, len(batch))], now)
		if err != nil {
			return sum, fmt.Errorf("store claims: %w", err)
		}
		for _, r := range res {
			if r.Duplicate {
				sum.Duplicates++
			} else {
				sum.Accepted++
			}
		}
	}
	return sum, nil
}

func sortRefused(r []claim.LineError) {
	slices.SortStableFunc(r, func(a, b claim.LineError) int { return cmp.Compare(a.Line, b.Line) })
}
