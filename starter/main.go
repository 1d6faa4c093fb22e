// Command starter is the operator's tool: `setup` prepares Temporal and the
// store, `submit` feeds claims from JSON Lines, `status` shows the queue,
// `export` writes verdicts as JSON Lines, `quarantine` lists (and
// releases) poison claims and `tokens` lists, connects and maintains Meta
// tokens.
//
//	starter setup  [-tenants tenants.json]
//	starter submit [-file claims.jsonl] [-strict]
//	starter status [-json] [-temporal=false]
//	starter export [-tenant ID] [-after ID] [-limit N]
//	starter api-key -tenant ID [-name LABEL]
//	starter quarantine [-tenant ID] [-json] [-release ID,...|all]
//	starter tokens [list [-json]] | connect -tenant ID [-file PATH] | rotate-keys | check
//
// Every subcommand takes the engine's configuration flags (or environment
// variables); run `starter <subcommand> -h` to list them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/store"
)

const usage = `usage: starter <command> [flags]

commands:
  setup    create search attributes, the Dispatcher, evidence-purge and token-health schedules, the Governor and the audit; load -tenants FILE into the store
  submit   store claims from JSON Lines (-file, default stdin); malformed lines are refused with line and reason
  status   pending, leased and decided claims per tenant; the schedule, the Governor, the audit and each limiter
  export   decided claims as JSON Lines on stdout
  api-key  make a platform API key for -tenant (printed once; only its hash is stored)
  quarantine  list poison claims (their check panicked) taken out of the queue; -release ID,...|all puts them back to pending
  tokens   list Meta tokens (state, expiry, scopes, budget, used; never a value); connect -tenant ID (token on stdin or -file),
           rotate-keys (re-wrap connected tokens under the first TOKEN_KEYS_REF key), check (run the token-health Schedule now)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "setup":
		err = setup(ctx, args)
	case "submit":
		err = submit(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	case "status":
		err = status(ctx, args, os.Stdout)
	case "export":
		err = export(ctx, args, os.Stdout)
	case "api-key":
		err = apiKey(ctx, args, os.Stdout)
	case "quarantine":
		err = quarantine(ctx, args, os.Stdout)
	case "tokens":
		err = tokensCmd(ctx, args, os.Stdin, os.Stdout)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "starter: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(int(exit))
		}
		fmt.Fprintln(os.Stderr, "starter:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a status and no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// command holds what every subcommand shares: configuration, and lazily the
// store and the Temporal client.
type command struct {
	cfg config.Config
	fs  *flag.FlagSet
}

func newCommand(name string) *command {
	c := &command{cfg: config.Default(), fs: flag.NewFlagSet("starter "+name, flag.ContinueOnError)}
	c.cfg.RegisterFlags(c.fs)
	return c
}

func (c *command) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError(0)
		}
		return exitError(2)
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", c.fs.Args())
	}
	return c.cfg.Validate()
}

func (c *command) store(ctx context.Context) (store.Store, error) {
	return store.Open(ctx, c.cfg.StoreURL)
}

func (c *command) temporal() (client.Client, error) {
	z, err := logging.New("warn")
	if err != nil {
		return nil, err
	}
	payloads, err := codec.FromRef(c.cfg.PayloadKeysRef)
	if err != nil {
		return nil, err
	}
	opts, err := c.cfg.ClientOptions()
	if err != nil {
		return nil, err
	}
	opts.Logger = logging.Temporal(z)
	if payloads != nil {
		opts.DataConverter = payloads.DataConverter() // setup's Schedule and starts carry sealed inputs
	}
	tc, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", c.cfg.TemporalAddress, err)
	}
	return tc, nil
}
