package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/internal/vault"
	"github.com/socialproof/verifier/limiter"
)

const tokensUsage = `usage: starter tokens [list] [-json] [-temporal=false]
       starter tokens connect -tenant ID [-file PATH]   (the token from PATH, or stdin; never a flag)
       starter tokens rotate-keys                        (re-wrap every connected token under the first TOKEN_KEYS_REF key)
       starter tokens check                              (run the token-health Schedule now)
`

// TokenLine is one line of `starter tokens -json`: never the value.
type TokenLine struct {
	ID                  string    `json:"id"`
	Tenant              string    `json:"tenant,omitempty"`
	Stored              string    `json:"stored"` // "sealed (key <id>)", "reference env:NAME", or "app id and secret"
	State               string    `json:"state"`
	Reason              string    `json:"reason,omitempty"`
	Type                string    `json:"type,omitempty"`
	Scopes              []string  `json:"scopes"`
	ExpiresAt           time.Time `json:"expires_at,omitzero"`
	DataAccessExpiresAt time.Time `json:"data_access_expires_at,omitzero"`
	CheckedAt           time.Time `json:"checked_at,omitzero"`
	BudgetCalls         int       `json:"budget_calls"`
	BudgetWindow        string    `json:"budget_window"`
	Used                *int      `json:"used,omitempty"` // permits in the limiter's window now; absent when not asked or not started
}

// tokensCmd lists, connects and maintains Meta tokens.
func tokensCmd(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return listTokens(ctx, args, out)
	case "connect":
		return connectToken(ctx, args, in, out)
	case "rotate-keys":
		return rotateTokenKeys(ctx, args, out)
	case "check":
		return checkTokens(ctx, args, out)
	}
	return fmt.Errorf("tokens: unknown subcommand %q\n%s", sub, tokensUsage)
}

func listTokens(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("tokens")
	asJSON := c.fs.Bool("json", false, "list as JSON Lines")
	askTemporal := c.fs.Bool("temporal", true, "ask each token's limiter how many permits its window holds")
	if err := c.parse(args); err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	toks, err := st.Tokens(ctx)
	if err != nil {
		return err
	}
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return err
	}
	owners := store.TokenTenants(toks, tenants)
	var tc client.Client
	if *askTemporal {
		if tc, err = c.temporal(); err != nil {
			return err
		}
		defer tc.Close()
	}
	lines := make([]TokenLine, 0, len(toks))
	for _, t := range toks {
		l := tokenLine(t, owners[t.ID])
		if tc != nil {
			l.Used, err = permitsUsed(ctx, tc, t.ID)
			if err != nil {
				return err
			}
		}
		lines = append(lines, l)
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\ttenant\tstate\texpires\tscopes\tbudget\tused\tstored\treason")
	for _, l := range lines {
		used := "-"
		if l.Used != nil {
			used = fmt.Sprint(*l.Used)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%s\t%s\t%s\t%s\n", l.ID, dash(l.Tenant), l.State, expiry(l), dash(strings.Join(l.Scopes, ",")),
			l.BudgetCalls, l.BudgetWindow, used, l.Stored, l.Reason)
	}
	return tw.Flush()
}

// tokenLine shows t, the token of tenant ("" for none).
func tokenLine(t store.Token, tenant string) TokenLine {
	l := TokenLine{ID: t.ID, Tenant: tenant, State: string(t.Health.State), Reason: t.Health.Reason, Type: t.Health.Type,
		Scopes: t.Health.Scopes, ExpiresAt: t.Health.ExpiresAt, DataAccessExpiresAt: t.Health.DataAccessExpiresAt,
		CheckedAt: t.Health.CheckedAt, BudgetCalls: t.BudgetCalls, BudgetWindow: t.BudgetWindow}
	switch {
	case t.ID == store.AppTokenID:
		l.Stored = "app id and secret"
		l.State = "-" // it asks about the others; nothing asks about it
	case t.Sealed != nil:
		l.Stored = "sealed (key " + t.Sealed.MasterKeyID + ")"
	default:
		l.Stored = "reference " + t.SecretRef // where the secret is, never the secret
	}
	return l
}

func expiry(l TokenLine) string {
	at := store.TokenHealth{ExpiresAt: l.ExpiresAt, DataAccessExpiresAt: l.DataAccessExpiresAt}.ExpiresFirst()
	if at.IsZero() {
		if l.CheckedAt.IsZero() {
			return "-"
		}
		return "never"
	}
	return at.UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// permitsUsed asks a token's limiter for the permits in its window; nil
// when the limiter has not started (no call made yet).
func permitsUsed(ctx context.Context, tc client.Client, tokenID string) (*int, error) {
	v, err := tc.QueryWorkflow(ctx, limiter.WorkflowID(tokenID), "", limiter.QueryState)
	var notStarted *serviceerror.NotFound
	if errors.As(err, &notStarted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("limiter %s: %w", tokenID, err)
	}
	var st limiter.State
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("limiter %s: %w", tokenID, err)
	}
	return &st.UsedInWindow, nil
}

// connectToken connects a tenant's token as the platform API does: checked
// with debug_token, exchanged when short-lived, read once, stored sealed.
// The value comes from a file or stdin, never from a flag (flags show in
// the process list and shell history).
func connectToken(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	c := newCommand("tokens connect")
	tenant := c.fs.String("tenant", "", "the tenant whose token it is (required)")
	file := c.fs.String("file", "", "read the token from this file (default: stdin, first line)")
	if err := c.parse(args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("tokens connect: -tenant is required")
	}
	value, err := readToken(*file, in)
	if err != nil {
		return err
	}
	keys, err := vault.FromRef(c.cfg.TokenKeysRef)
	if err != nil {
		return fmt.Errorf("token master keys: %w", err)
	}
	if keys == nil {
		return errors.New("tokens connect: TOKEN_KEYS_REF is not set: tokens are stored only encrypted")
	}
	appSecret, err := c.cfg.AppSecret()
	if err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tc, err := c.temporal()
	if err != nil {
		return err
	}
	defer tc.Close()
	eng := engine.New(engine.Deps{
		Store: st, Vault: keys, Temporal: tc, Speed: c.cfg.Speed, PlatformTokenID: c.cfg.PlatformTokenID,
		Graph: graph.New(graph.Config{BaseURL: c.cfg.GraphURL, Version: c.cfg.GraphVersion, AppID: c.cfg.AppID, AppSecret: appSecret}),
	})
	conn := eng.Connector
	conn.ExpiringWithin = c.cfg.TokenExpiringWithin
	tok, err := conn.Connect(ctx, *tenant, value)
	if err != nil {
		return err
	}
	l := tokenLine(tok, *tenant)
	fmt.Fprintf(out, "connected %s for tenant %s: %s, %s, expires %s, scopes %s\n", l.ID, *tenant, l.State, dash(l.Type), expiry(l), strings.Join(l.Scopes, ","))
	if l.Reason != "" {
		fmt.Fprintf(out, "note: %s\n", l.Reason)
	}
	return nil
}

func readToken(file string, in io.Reader) (secret.Value, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return secret.Value{}, fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		in = f
	}
	line, err := bufio.NewReader(io.LimitReader(in, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return secret.Value{}, fmt.Errorf("read token: %w", err)
	}
	v := secret.New(strings.TrimSpace(line))
	if v.Empty() {
		return secret.Value{}, errors.New("no token given (first line of the file or stdin)")
	}
	return v, nil
}

// rotateTokenKeys re-wraps every connected token's data key under the first
// key of TOKEN_KEYS_REF. Workers keep working throughout as long as their
// TOKEN_KEYS_REF holds both keys: add the new key first, restart workers,
// run this, then drop the old key.
func rotateTokenKeys(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("tokens rotate-keys")
	if err := c.parse(args); err != nil {
		return err
	}
	keys, err := vault.FromRef(c.cfg.TokenKeysRef)
	if err != nil {
		return fmt.Errorf("token master keys: %w", err)
	}
	if keys == nil {
		return errors.New("tokens rotate-keys: TOKEN_KEYS_REF is not set")
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := vault.Rotate(ctx, st, keys)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tokens re-wrapped under key %s: %d; already under it: %d\n", keys.ActiveKey(), res.Rewrapped, res.Already)
	if len(res.Missing) > 0 {
		return fmt.Errorf("%d tokens are sealed under keys TOKEN_KEYS_REF does not hold: %s", len(res.Missing), strings.Join(res.Missing, ", "))
	}
	return nil
}

// checkTokens triggers the token-health Schedule now.
func checkTokens(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("tokens check")
	if err := c.parse(args); err != nil {
		return err
	}
	tc, err := c.temporal()
	if err != nil {
		return err
	}
	defer tc.Close()
	if err := tc.ScheduleClient().GetHandle(ctx, tokens.HealthScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		return fmt.Errorf("trigger %s (run `starter setup` first): %w", tokens.HealthScheduleID, err)
	}
	fmt.Fprintf(out, "schedule %s triggered: `starter tokens` shows the results once it ran\n", tokens.HealthScheduleID)
	return nil
}
