package eventlog

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// dialect is what differs between the backends; every other query is shared (both take
// $1-style placeholders, partial indexes, UPDATE ... RETURNING and ON CONFLICT DO NOTHING).
type dialect struct {
	name string
	// createEvents is the first migration's CREATE TABLE (the column types differ; the
	// indexes are shared, in schema.go).
	createEvents string
	// migrationLock serializes migrations of replicas starting together, inside the
	// migration transaction ("" when beginning the transaction already does).
	migrationLock string
	// pending is the FROM of scans for undispatched events. SQLite's planner, without
	// statistics, takes the full (env, seq) index over the partial one of the same shape
	// and would walk every dispatched event; PostgreSQL's statistics pick the partial one.
	pending string
	// skipLocked ends Claim's row selection: on PostgreSQL concurrent claimers pass over
	// each other's rows instead of waiting; SQLite has one writer at a time.
	skipLocked string
	// serialWrites: one write transaction at a time per process.
	serialWrites bool
	// arrays: lists are bound as one array parameter (= ANY($n)), not one placeholder each.
	arrays bool
	// insert writes rows (skipping any whose internal id or dedup key is taken) and returns
	// the internal ids it wrote.
	insert func(ctx context.Context, tx *sql.Tx, rows []*row) (map[string]bool, error)
	// insertOne, when set, is a statement Open prepares that inserts one row (the eleven
	// columns of a row in order, skipping it when its internal id or dedup key is taken):
	// a transaction of one row uses it instead of insert.
	insertOne string
	// dispatched records the outcomes (see Log.Dispatched), unless dispatchOne is set: a
	// statement Open prepares that records one (now, runs, reason, internal id).
	dispatched  func(ctx context.Context, tx *sql.Tx, ds []Dispatch, now int64) error
	dispatchOne string
	// lockKeys, when set, takes transaction locks on dedup keys (sorted) before they are
	// released or inserted, so appenders in other processes never deadlock on them.
	lockKeys func(ctx context.Context, tx *sql.Tx, keys [][]byte) error
	// retryable: the transaction lost a conflict with another one and may simply run again.
	retryable func(error) bool
}

// oneOf is the condition "col is one of vals", binding vals as the one parameter $n: an
// array on PostgreSQL, a JSON array on SQLite (byte strings in hex), so the statement text
// is the same for any number of values.
func oneOf(d *dialect, col string, n int, vals any) (string, any) {
	if d.arrays {
		return fmt.Sprintf("%s = ANY($%d)", col, n), vals
	}
	if keys, ok := vals.([][]byte); ok {
		hexes := make([]string, len(keys))
		for i, k := range keys {
			hexes[i] = hex.EncodeToString(k)
		}
		b, _ := json.Marshal(hexes)
		return fmt.Sprintf("%s IN (SELECT unhex(value) FROM json_each($%d))", col, n), string(b)
	}
	b, _ := json.Marshal(vals)
	return fmt.Sprintf("%s IN (SELECT value FROM json_each($%d))", col, n), string(b)
}

// chunks splits vals into pieces of at most n.
func chunks[T any](vals []T, n int) [][]T {
	var out [][]T
	for len(vals) > n {
		out = append(out, vals[:n])
		vals = vals[n:]
	}
	if len(vals) > 0 {
		out = append(out, vals)
	}
	return out
}
