package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// MigrateDownTo rolls the store in db back to migration version, for tests of
// the Down migrations. backend is "sqlite" or "postgres".
func MigrateDownTo(ctx context.Context, db *sql.DB, backend string, version int64) error {
	provider, err := migrationProvider(db, backend)
	if err != nil {
		return err
	}
	_, err = provider.DownTo(ctx, version)
	return err
}

// MigrateUpTo applies the migrations of backend to db up to version, for
// tests that compare a schema built by the Up migrations with one that went
// down and up again.
func MigrateUpTo(ctx context.Context, db *sql.DB, backend string, version int64) error {
	provider, err := migrationProvider(db, backend)
	if err != nil {
		return err
	}
	_, err = provider.UpTo(ctx, version)
	return err
}

func migrationProvider(db *sql.DB, backend string) (*goose.Provider, error) {
	dialect := map[string]goose.Dialect{"sqlite": goose.DialectSQLite3, "postgres": goose.DialectPostgres}[backend]
	if dialect == "" {
		return nil, fmt.Errorf("unknown backend %q", backend)
	}
	fsys, err := fs.Sub(migrationFiles, "migrations/"+backend)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, db, fsys)
}

// OnEvidenceRead makes s, a store from Open, run fn inside Evidence between
// its read of the actions and its read of the coverage (nil: nothing).
func OnEvidenceRead(s Store, fn func()) { s.(*sqlStore).afterActionsRead = fn }

// OnRecordOutcomeStep makes s, a store from Open, run fn inside
// RecordOutcome's transaction after each of its steps, named in order
// "evidence", "coverage", "quarantine", "decide", "audit", "revoke",
// "counts" and "flags" (every step, whether it wrote or not); an error from
// fn fails the call there (nil: nothing).
func OnRecordOutcomeStep(s Store, fn func(step string) error) { s.(*sqlStore).afterOutcomeStep = fn }
