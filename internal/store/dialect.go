package store

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dialect holds what differs between PostgreSQL and SQLite; every query is
// written once, with ? placeholders, and adapted here.
type dialect struct {
	name string
	// numberedPlaceholders: PostgreSQL wants $1, $2, ... instead of ?.
	numberedPlaceholders bool
	// microsTime: times are stored as INTEGER unix microseconds (SQLite)
	// rather than TIMESTAMPTZ (PostgreSQL).
	microsTime bool
	// claimLock ends the subquery that picks claims to lease. PostgreSQL locks
	// the picked rows and skips rows another claimer holds; SQLite needs
	// nothing, its write transaction already excludes other writers.
	claimLock string
	// rowLock ends a SELECT that reads a row to rewrite it in the same
	// transaction: PostgreSQL locks the row so concurrent read-modify-writes
	// queue instead of losing an update; SQLite's write transaction already
	// excludes other writers.
	rowLock string
	// snapshot is the isolation level at which every statement of a
	// transaction reads the same snapshot.
	snapshot sql.IsolationLevel
}

var (
	postgresDialect = dialect{
		name:                 "postgres",
		numberedPlaceholders: true,
		claimLock:            " FOR UPDATE SKIP LOCKED",
		rowLock:              " FOR UPDATE",
		snapshot:             sql.LevelRepeatableRead,
	}
	sqliteDialect = dialect{
		name:       "sqlite",
		microsTime: true,
		// snapshot stays the default: in WAL mode a deferred read
		// transaction reads one snapshot (modernc ignores the level).
	}
)

// rebind rewrites the ? placeholders of query for the dialect. Queries in this
// package never contain a literal question mark.
func (d dialect) rebind(query string) string {
	if !d.numberedPlaceholders || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + len(query)/4)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// timeArg converts t to a query argument: NULL for the zero time, otherwise UTC
// truncated to the microsecond both databases keep.
func (d dialect) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	if d.microsTime {
		return t.UnixMicro()
	}
	return t
}

// timePtrArg is timeArg for an optional time.
func (d dialect) timePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.timeArg(*t)
}

// timeColumn scans a time column of either dialect into a UTC time.Time, NULL
// giving the zero time.
type timeColumn struct{ dst *time.Time }

func (c timeColumn) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.dst = time.Time{}
	case time.Time:
		*c.dst = v.UTC()
	case int64:
		*c.dst = time.UnixMicro(v).UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("time column: unsupported value of type %T", src)
	}
	return nil
}

// parse accepts text a person may have written into the column by hand.
func (c timeColumn) parse(s string) error {
	if micros, err := strconv.ParseInt(s, 10, 64); err == nil {
		*c.dst = time.UnixMicro(micros).UTC()
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time column: %w", err)
	}
	*c.dst = t.UTC()
	return nil
}

// placeholders returns "(?, ?, ...)" repeated rows times, comma separated, each
// with cols placeholders.
func placeholders(rows, cols int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ")
}
