package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socialproof/verifier/internal/metasim"
)

// Suite is the full chaos suite (`make chaos`), each scenario with claims
// claims arriving over arrival.
func Suite(claims int, arrival time.Duration) []Scenario {
	return []Scenario{
		SigkillScenario(claims, arrival, 5),
		DevServerScenario(claims, arrival),
		PostgresScenario(claims, arrival),
		MetaFaultsScenario(claims, arrival),
		DuplicatesScenario(claims, arrival),
	}
}

// Named returns the suite's scenario called name.
func Named(name string, claims int, arrival time.Duration) (Scenario, error) {
	for _, sc := range append(Suite(claims, arrival), ShortScenario(claims, arrival, false)) {
		if sc.Name == name {
			return sc, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (sigkill, devserver, postgres, metafaults, duplicates, short)", name)
}

// Names lists the suite's scenarios in order.
func Names() []string {
	var names []string
	for _, sc := range Suite(1, time.Second) {
		names = append(names, sc.Name)
	}
	return names
}

// randomPoints picks n points in [from, to), sorted, at least gap apart
// (when they fit).
func randomPoints(r *Run, n int, from, to, gap time.Duration) []time.Duration {
	span := to - from - time.Duration(n-1)*gap
	if span < 0 {
		gap, span = 0, to-from
	}
	var pts []time.Duration
	for range n {
		pts = append(pts, time.Duration(r.Rand().Int64N(int64(span))))
	}
	slices.Sort(pts)
	for i := range pts {
		pts[i] += from + time.Duration(i)*gap
	}
	return pts
}

// killWorker SIGKILLs the worker, leaves it down for a random 1–5 s, and
// starts it again; the fault lasts until the new worker serves.
func killWorker(ctx context.Context, r *Run, i, of int) error {
	down := time.Second + time.Duration(r.Rand().Int64N(int64(4*time.Second)))
	return r.Fault(ctx, fmt.Sprintf("SIGKILL worker %d/%d", i, of), fmt.Sprintf("(down %.1fs)", down.Seconds()),
		r.KillWorker, down, func() error { return r.StartWorker(ctx) })
}

// SigkillScenario SIGKILLs the worker at kills random points while the
// claims arrive (and just after), restarting it each time.
func SigkillScenario(claims int, arrival time.Duration, kills int) Scenario {
	return Scenario{
		Name:   "sigkill",
		About:  fmt.Sprintf("the worker SIGKILLed at %d random points and restarted after 1–5 s", kills),
		Claims: claims, Arrival: arrival,
		Script: func(ctx context.Context, r *Run) error {
			for i, at := range randomPoints(r, kills, arrival/10, arrival+arrival/10, arrival/(time.Duration(kills)*2)) {
				if err := r.SleepUntil(ctx, at); err != nil {
					return err
				}
				if err := killWorker(ctx, r, i+1, kills); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// restartDevServer stops the dev server (gracefully, or SIGKILL when
// hard), leaves it down for down, and starts it again on the same database
// file and port.
func restartDevServer(ctx context.Context, r *Run, name string, hard bool, down time.Duration) error {
	how := "SIGTERM"
	if hard {
		how = "SIGKILL"
	}
	return r.Fault(ctx, name, fmt.Sprintf("(%s, down %.0fs, same database file and port)", how, down.Seconds()),
		func() error { return r.StopDevServer(hard) }, down, func() error { return r.StartDevServer(ctx) })
}

// DevServerScenario stops the Temporal dev server mid-run and starts it
// again on the same database file, twice: once gracefully, once with
// SIGKILL.
func DevServerScenario(claims int, arrival time.Duration) Scenario {
	return Scenario{
		Name:   "devserver",
		About:  "the Temporal dev server stopped (SIGTERM) and later killed (SIGKILL), 15 s down each time, restarted on the same database file",
		Claims: claims, Arrival: arrival,
		Script: func(ctx context.Context, r *Run) error {
			if err := r.SleepUntil(ctx, arrival*3/10); err != nil {
				return err
			}
			if err := restartDevServer(ctx, r, "dev server stopped", false, 15*time.Second); err != nil {
				return err
			}
			if err := r.SleepUntil(ctx, arrival*7/10); err != nil {
				return err
			}
			return restartDevServer(ctx, r, "dev server killed", true, 15*time.Second)
		},
	}
}

// PostgresScenario terminates the worker's PostgreSQL connections: five
// times at random points, then for 15 s every half second.
func PostgresScenario(claims int, arrival time.Duration) Scenario {
	return Scenario{
		Name:   "postgres",
		About:  "the worker's PostgreSQL connections terminated at 5 random points, then every 0.5 s for 15 s",
		Claims: claims, Arrival: arrival, NeedsPostgres: true,
		Script: func(ctx context.Context, r *Run) error {
			for i, at := range randomPoints(r, 5, arrival/10, arrival*6/10, arrival/20) {
				if err := r.SleepUntil(ctx, at); err != nil {
					return err
				}
				if err := terminateOnce(ctx, r, fmt.Sprintf("connections terminated %d/5", i+1)); err != nil {
					return err
				}
			}
			if err := r.SleepUntil(ctx, arrival*7/10); err != nil {
				return err
			}
			return terminateStorm(ctx, r, 15*time.Second)
		},
	}
}

func terminateOnce(ctx context.Context, r *Run, name string) error {
	var n int
	return r.Fault(ctx, name, "", func() error {
		var err error
		n, err = r.TerminateWorkerConnections(ctx)
		r.log("           %d backends of the worker terminated", n)
		return err
	}, 0, nil)
}

func terminateStorm(ctx context.Context, r *Run, d time.Duration) error {
	total := 0
	stormCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	return r.Fault(ctx, "connections terminated every 0.5 s", fmt.Sprintf("(for %v)", d), func() error {
		go func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				n, err := r.TerminateWorkerConnections(stormCtx)
				if err != nil && stormCtx.Err() == nil {
					done <- err
					return
				}
				total += n
				select {
				case <-stormCtx.Done():
					done <- nil
					return
				case <-t.C:
				}
			}
		}()
		return nil
	}, d, func() error {
		cancel()
		err := <-done
		r.log("           %d backends of the worker terminated in the storm", total)
		return err
	})
}

// MetaFaultsScenario makes metasim misbehave: 10% of Graph calls answered
// 5xx while the claims arrive; latency spikes beyond the Graph activity's
// timeouts; throttle errors with regain times on the platform token and a
// premium token; one premium tenant's token invalid (190) and back.
func MetaFaultsScenario(claims int, arrival time.Duration) Scenario {
	return Scenario{
		Name: "metafaults",
		About: "metasim: 10% 5xx throughout; 30% of calls delayed 75 s (beyond the 20 s call timeout and the 60 s heartbeat timeout) for 45 s; " +
			"throttles (regain 10 and 15 platform minutes); a premium token invalid (190) for 40 s",
		Claims: claims, Arrival: arrival,
		Script: func(ctx context.Context, r *Run) error {
			sim := r.Sim()
			faults := metasim.Faults{ErrorRate: 0.10}
			set := func(f metasim.Faults) func() error { return func() error { sim.SetFaults(f); return nil } }
			// 10% 5xx for the whole arrival window, in the background.
			errs := make(chan error, 1)
			go func() {
				errs <- r.Fault(ctx, "10% 5xx", "(the whole arrival window)", set(faults), arrival, func() error {
					faults.ErrorRate = 0
					sim.SetFaults(faults)
					return nil
				})
			}()
			if err := r.SleepUntil(ctx, arrival*15/100); err != nil {
				return err
			}
			spike := 75 * time.Second
			if err := r.Fault(ctx, "latency spikes", fmt.Sprintf("(30%% of calls wait %v, for 45 s)", spike),
				set(metasim.Faults{ErrorRate: 0.10, SpikeRate: 0.3, SpikeLatency: spike}), 45*time.Second,
				set(metasim.Faults{ErrorRate: 0.10})); err != nil {
				return err
			}
			speed := sim.Config().Speed
			throttle := func(token string, regain time.Duration) error {
				return r.Fault(ctx, "throttled "+token, fmt.Sprintf("(regain %v platform time, %.0fs wall)", regain, regain.Seconds()/speed),
					func() error { return sim.Throttle(token, regain) }, time.Duration(float64(regain)/speed), nil)
			}
			premium := r.PremiumTokens()
			if err := r.SleepUntil(ctx, arrival*45/100); err != nil {
				return err
			}
			tErr := make(chan error, 1)
			if len(premium) > 1 {
				go func() { tErr <- throttle(premium[1], 15*time.Minute) }()
			} else {
				tErr <- nil
			}
			if err := throttle(r.PlatformToken(), 10*time.Minute); err != nil {
				return err
			}
			if err := <-tErr; err != nil {
				return err
			}
			if err := r.SleepUntil(ctx, arrival*65/100); err != nil {
				return err
			}
			if len(premium) > 0 {
				tok := premium[0]
				if err := r.Fault(ctx, "token "+tok+" invalid (190)", "(for 40 s)",
					func() error { return sim.SetTokenState(tok, metasim.TokenInvalid) }, 40*time.Second,
					func() error { return sim.SetTokenState(tok, metasim.TokenValid) }); err != nil {
					return err
				}
			}
			return <-errs
		},
	}
}

// DuplicatesScenario sends half of metasim's webhook POSTs twice and every
// claim twice (the second time through the platform API).
func DuplicatesScenario(claims int, arrival time.Duration) Scenario {
	return Scenario{
		Name:   "duplicates",
		About:  "every claim submitted twice (store, then the platform API: racing, or up to 20 s later); half of the webhook POSTs delivered twice",
		Claims: claims, Arrival: arrival, WebhookDuplicates: 0.5, DuplicateSubmissions: true,
		// No outage: nothing to recover from, the checks are the point.
	}
}

// ShortScenario is the shortened suite `make test` runs: one SIGKILL, one
// dev server restart, 10% 5xx, duplicate submissions and webhooks, and,
// on PostgreSQL, one termination of the worker's connections.
func ShortScenario(claims int, arrival time.Duration, postgres bool) Scenario {
	about := []string{"10% 5xx throughout", "one SIGKILL of the worker", "one dev server restart", "every claim submitted twice", "30% of webhooks twice"}
	if postgres {
		about = append(about, "the worker's PostgreSQL connections terminated once")
	}
	return Scenario{
		Name: "short", About: strings.Join(about, ", "),
		Claims: claims, Arrival: arrival, WebhookDuplicates: 0.3, DuplicateSubmissions: true,
		Script: func(ctx context.Context, r *Run) error {
			sim := r.Sim()
			errs := make(chan error, 1)
			go func() {
				errs <- r.Fault(ctx, "10% 5xx", "(the whole arrival window)",
					func() error { sim.SetFaults(metasim.Faults{ErrorRate: 0.1}); return nil }, arrival,
					func() error { sim.SetFaults(metasim.Faults{}); return nil })
			}()
			if err := r.SleepUntil(ctx, arrival*25/100); err != nil {
				return err
			}
			if err := killWorker(ctx, r, 1, 1); err != nil {
				return err
			}
			if postgres {
				if err := r.SleepUntil(ctx, arrival*45/100); err != nil {
					return err
				}
				if err := terminateOnce(ctx, r, "connections terminated"); err != nil {
					return err
				}
			}
			if err := r.SleepUntil(ctx, arrival*6/10); err != nil {
				return err
			}
			if err := restartDevServer(ctx, r, "dev server restarted", false, 5*time.Second); err != nil {
				return err
			}
			return <-errs
		},
	}
}
