package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// sqliteBusyTimeout is how long an SQLite connection waits for another
// connection or process (a worker and a CLI on the same file) to release the
// write lock before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// Open connects to the store named by dsn and applies pending migrations.
//
// Accepted forms:
//
//	postgres://user:pass@host:5432/db?sslmode=disable   PostgreSQL (pgx)
//	postgresql://...                                    PostgreSQL (pgx)
//	sqlite:PATH, sqlite://PATH                          SQLite file
//	file:PATH, file://PATH                              SQLite file
//	PATH                                                SQLite file (anything else)
//
// The parent directory of an SQLite file is created if missing. Errors never
// contain the password of a PostgreSQL DSN.
func Open(ctx context.Context, dsn string) (Store, error) {
	var (
		s   Store
		err error
	)
	if isPostgresDSN(dsn) {
		s, err = openPostgres(ctx, dsn)
	} else {
		s, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", redactDSNSecrets(err, dsn))
	}
	return s, nil
}

func isPostgresDSN(dsn string) bool {
	lower := strings.ToLower(dsn)
	return strings.HasPrefix(lower, "postgres://") || strings.HasPrefix(lower, "postgresql://")
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migratePostgres(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &sqlStore{db: db, d: postgresDialect}, nil
}

// migratePostgres applies migrations under a session advisory lock, so two
// processes opening the same database at once apply them once. The lock id is
// derived from the target schema: stores in different schemas of one database
// (as in tests) migrate independently instead of queueing behind each other.
func migratePostgres(ctx context.Context, db *sql.DB) error {
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	if schema == "" {
		return errors.New("no schema to create tables in: the search_path names no existing schema")
	}
	lockID := fnv.New64a()
	lockID.Write([]byte("github.com/socialproof/verifier/internal/store:" + schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(lockID.Sum64())),
		lock.WithLockTimeout(1, 300),  // poll every second, up to 5 minutes
		lock.WithUnlockTimeout(1, 60), // poll every second, up to 1 minute
	)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	return migrate(ctx, db, goose.DialectPostgres, "migrations/postgres", goose.WithSessionLocker(locker))
}

func openSQLite(ctx context.Context, dsn string) (Store, error) {
	path, userParams := sqlitePath(dsn)
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
		}
	}
	params := userParams
	params.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "foreign_keys(1)")
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so a
	// transaction that reads then writes waits on the busy timeout instead of
	// failing with SQLITE_BUSY when it tries to upgrade its lock.
	params.Set("_txlock", "immediate")

	db, err := openSQLiteDB(ctx, path+"?"+params.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if err := migrateSQLite(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return &sqlStore{db: db, d: sqliteDialect}, nil
}

// openSQLiteDB opens and pings the database. Switching a new file to WAL
// needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
// the busy timeout, when another process is switching it at the same
// moment: that is retried a few times.
func openSQLiteDB(ctx context.Context, dsn string) (*sql.DB, error) {
	for attempt := 1; ; attempt++ {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, err
		}
		// SQLite has one writer at a time; one connection per process avoids
		// queueing on the file lock inside the process, and keeps an in-memory
		// database a single database.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		err = db.PingContext(ctx)
		if err == nil {
			return db, nil
		}
		db.Close()
		if attempt == 5 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// migrateSQLite applies migrations. SQLite has no session lock, so when two
// processes open a new file at once the loser's migration fails on tables the
// winner just created (its transaction rolls back whole); by the next attempt
// the winner has recorded the version and there is nothing left to apply.
func migrateSQLite(ctx context.Context, db *sql.DB) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = migrate(ctx, db, goose.DialectSQLite3, "migrations/sqlite"); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return err
}

func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrationFiles, dir)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	provider, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// sqlitePath splits an SQLite DSN into the file path and any query parameters
// the caller added (passed on to the driver).
func sqlitePath(dsn string) (string, url.Values) {
	rest := dsn
	for _, scheme := range []string{"sqlite:", "file:"} {
		if len(rest) >= len(scheme) && strings.EqualFold(rest[:len(scheme)], scheme) {
			rest = rest[len(scheme):]
			// sqlite:///abs/path and file:///abs/path are URLs with an empty
			// host; sqlite://rel/path keeps the relative path.
			rest = strings.TrimPrefix(rest, "//")
			break
		}
	}
	path, query, _ := strings.Cut(rest, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		params = url.Values{}
	}
	return path, params
}

// redactDSNSecrets hides the DSN's password wherever it appears in err's
// message (a driver may echo the connection string), keeping err in the chain
// for errors.Is and errors.As.
func redactDSNSecrets(err error, dsn string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	if u, perr := url.Parse(dsn); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			secrets = append(secrets, pw, url.PathEscape(pw), url.QueryEscape(pw))
		}
		if pw := u.Query().Get("password"); pw != "" {
			secrets = append(secrets, pw, url.QueryEscape(pw))
		}
	} else if isPostgresDSN(dsn) {
		// An unparsable DSN may still carry a password between "user:" and
		// "@"; hide everything between the scheme and the host.
		if at := strings.LastIndex(dsn, "@"); at > 0 {
			if scheme := strings.Index(dsn, "://"); scheme >= 0 && scheme+3 < at {
				secrets = append(secrets, dsn[scheme+3:at])
			}
		}
	}
	msg := err.Error()
	redacted := msg
	for _, secret := range secrets {
		if len(secret) > 0 {
			redacted = strings.ReplaceAll(redacted, secret, "xxxxx")
		}
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}

// redactedError carries a message with secrets removed in place of err's own.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
