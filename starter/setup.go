package main

import (
	"context"
	"fmt"

	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/workflows"
)

func setup(ctx context.Context, args []string) error {
	c := newCommand("setup")
	tenantsFile := c.fs.String("tenants", "", "tenants-and-tokens JSON file to load into the store (see README)")
	if err := c.parse(args); err != nil {
		return err
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if *tenantsFile != "" {
		f, err := config.LoadTenants(*tenantsFile)
		if err != nil {
			return err
		}
		if f.PlatformToken != "" && f.PlatformToken != c.cfg.PlatformTokenID {
			return fmt.Errorf("tenants file names platform token %q but the engine uses %q (set PLATFORM_TOKEN_ID)", f.PlatformToken, c.cfg.PlatformTokenID)
		}
		if err := f.Apply(ctx, st); err != nil {
			return err
		}
		fmt.Printf("store: %d tokens, %d tenants loaded from %s\n", len(f.Tokens), len(f.Tenants), *tenantsFile)
	}

	if err := workflows.EnsureAppToken(ctx, st); err != nil {
		return err
	}

	tc, err := c.temporal()
	if err != nil {
		return err
	}
	defer tc.Close()
	added, err := workflows.EnsureSearchAttributes(ctx, tc, c.cfg.Namespace)
	if err != nil {
		return err
	}
	if len(added) > 0 {
		fmt.Printf("search attributes added: %v\n", added)
	} else {
		fmt.Println("search attributes: present")
	}
	sc := workflows.NewScheduleConfig(c.cfg)
	created, err := workflows.EnsureSchedule(ctx, tc, sc)
	if err != nil {
		return err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Printf("schedule %s %s: every %v, batch %d, speed %v\n", workflows.ScheduleID, verb, sc.Interval, sc.Dispatcher.BatchSize, c.cfg.Speed)
	if _, err := workflows.EnsurePurgeSchedule(ctx, tc, c.cfg); err != nil {
		return err
	}
	fmt.Printf("schedule %s: stored evidence kept %v\n", workflows.EvidencePurgeScheduleID, c.cfg.EvidenceRetention)
	if _, err := workflows.EnsureTokenHealthSchedule(ctx, tc, c.cfg); err != nil {
		return err
	}
	fmt.Printf("schedule %s: every token checked every %v, expiring %v ahead\n", tokens.HealthScheduleID, c.cfg.TokenHealthEvery, c.cfg.TokenExpiringWithin)
	started, err := workflows.EnsureRunning(ctx, tc, c.cfg)
	if err != nil {
		return err
	}
	fmt.Printf("governor and audit running (started now: %v); mode %s, honor while more than %d standard claims are open\n", started, c.cfg.Mode, c.cfg.HonorOpenAbove)
	return nil
}
