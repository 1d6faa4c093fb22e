package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// QuarantinedClaim is one line of `starter quarantine -json`.
type QuarantinedClaim struct {
	ID            int64     `json:"id"`
	Tenant        string    `json:"tenant"`
	Key           string    `json:"key"`
	Kind          string    `json:"kind"`
	Target        string    `json:"target"`
	Attempts      int       `json:"attempts"`
	SubmittedAt   time.Time `json:"submitted_at"`
	QuarantinedAt time.Time `json:"quarantined_at"`
	Reason        string    `json:"reason"`
}

// quarantinePage is how many quarantined claims one store call lists.
const quarantinePage = 1000

// quarantine lists the poison claims the engine took out of the queue (their
// check panicked), or with -release puts some, or all, back to pending.
func quarantine(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("quarantine")
	tenant := c.fs.String("tenant", "", "only this tenant's claims")
	asJSON := c.fs.Bool("json", false, "list as JSON Lines")
	release := c.fs.String("release", "", "put these quarantined claims back to pending: ids separated by commas, or all (of -tenant, if given)")
	if err := c.parse(args); err != nil {
		return err
	}
	var ids []int64
	all := *release == "all"
	if *release != "" && !all {
		for _, f := range strings.Split(*release, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("-release: %q is not a claim id (ids separated by commas, or all)", f)
			}
			ids = append(ids, id)
		}
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	if *release != "" {
		if all {
			claims, err := listQuarantined(ctx, st, *tenant)
			if err != nil {
				return err
			}
			for _, q := range claims {
				ids = append(ids, q.ID)
			}
		}
		n, err := st.Release(ctx, ids)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "released %d of %d claims back to pending\n", n, len(ids))
		return nil
	}

	claims, err := listQuarantined(ctx, st, *tenant)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		for _, q := range claims {
			if err := enc.Encode(quarantinedClaim(q)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(claims) == 0 {
		fmt.Fprintln(out, "no quarantined claims")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\ttenant\tkey\tkind\ttarget\tquarantined at\treason")
	for _, q := range claims {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", q.ID, q.Tenant, q.Key, q.Kind, q.Target,
			q.QuarantinedAt.Local().Format(time.DateTime), q.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d quarantined; once the cause is fixed, `starter quarantine -release ID,...` (or -release all) puts them back to pending\n", len(claims))
	return nil
}

func listQuarantined(ctx context.Context, st store.Store, tenant string) ([]store.Claim, error) {
	var all []store.Claim
	for after := int64(0); ; {
		page, err := st.Quarantined(ctx, store.ExportFilter{Tenant: tenant, AfterID: after, Limit: quarantinePage})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < quarantinePage {
			return all, nil
		}
		after = page[len(page)-1].ID
	}
}

func quarantinedClaim(c store.Claim) QuarantinedClaim {
	return QuarantinedClaim{
		ID: c.ID, Tenant: c.Tenant, Key: c.Key, Kind: string(c.Kind), Target: c.Target, Attempts: c.Attempts,
		SubmittedAt: c.SubmittedAt, QuarantinedAt: c.QuarantinedAt, Reason: c.LastError,
	}
}
