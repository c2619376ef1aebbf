package eventlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// columns are what a Record is read from, in scanRecord's order.
const columns = `seq, internal_id, client_id, name, event, received_at_ms, dispatched_at_ms, runs, reason`

// Get returns the event internalID of env, or ErrNotFound.
func (l *Log) Get(ctx context.Context, env, internalID string) (*Record, error) {
	q, err := l.db.QueryContext(ctx, `SELECT `+columns+` FROM tempest_events WHERE internal_id = $1 AND env = $2`, internalID, env)
	if err != nil {
		return nil, l.fail("get event", err)
	}
	recs, err := scanRecords(q)
	if err != nil {
		return nil, l.fail("get event", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, internalID)
	}
	return &recs[0], nil
}

// List returns the events of env matching f, newest first (Seq descending).
func (l *Log) List(ctx context.Context, env string, f Filter) ([]Record, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var where strings.Builder
	args := []any{env}
	where.WriteString("env = $1")
	and := func(cond string, v any) {
		args = append(args, v)
		fmt.Fprintf(&where, " AND "+cond, len(args))
	}
	if f.Name != "" {
		and("name = $%d", f.Name)
	}
	if !f.After.IsZero() {
		and("received_at_ms >= $%d", f.After.UnixMilli())
	}
	if !f.Before.IsZero() {
		and("received_at_ms < $%d", f.Before.UnixMilli())
	}
	if f.Cursor != "" {
		var seq int64
		err := l.db.QueryRowContext(ctx, `SELECT seq FROM tempest_events WHERE internal_id = $1 AND env = $2`, f.Cursor, env).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: cursor %s (deleted by retention, or not an event of this environment)", ErrNotFound, f.Cursor)
		}
		if err != nil {
			return nil, l.fail("list events", err)
		}
		and("seq < $%d", seq)
	}
	args = append(args, limit)
	q, err := l.db.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM tempest_events WHERE %s ORDER BY seq DESC LIMIT $%d`,
		columns, where.String(), len(args)), args...)
	if err != nil {
		return nil, l.fail("list events", err)
	}
	recs, err := scanRecords(q)
	return recs, l.fail("list events", err)
}

// Expire deletes the events received before before (dispatched or not: retention is a
// bound on the log's size), in transactions of at most batch rows so it never holds locks
// for long, and returns how many it deleted. It stops at the first error or when ctx ends,
// returning what it deleted until then. On PostgreSQL it passes over rows another
// transaction holds (a Claim in flight); the next run deletes them.
func (l *Log) Expire(ctx context.Context, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("eventlog: Expire batch %d: use a positive number of rows per transaction", batch)
	}
	var total int64
	for {
		var n int64
		err := l.writeTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM tempest_events WHERE seq IN (
				SELECT seq FROM tempest_events WHERE received_at_ms < $1
				ORDER BY received_at_ms LIMIT $2`+l.d.skipLocked+`)`, before.UnixMilli(), batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, l.fail("expire events", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// scanRecords reads the rows of a query selecting columns, and closes them.
func scanRecords(q *sql.Rows) ([]Record, error) {
	defer q.Close()
	var out []Record
	for q.Next() {
		var r Record
		var client []byte
		var received int64
		var dispatched sql.NullInt64
		var runs sql.NullString
		if err := q.Scan(&r.Seq, &r.InternalID, &client, &r.Name, &r.Event, &received, &dispatched, &runs, &r.Reason); err != nil {
			return nil, err
		}
		r.ClientID = string(client)
		r.ReceivedAt = time.UnixMilli(received).UTC()
		if dispatched.Valid {
			t := time.UnixMilli(dispatched.Int64).UTC()
			r.DispatchedAt = &t
		}
		if runs.Valid {
			if err := json.Unmarshal([]byte(runs.String), &r.Runs); err != nil {
				return nil, fmt.Errorf("event %s: runs %q: %w", r.InternalID, runs.String, err)
			}
		}
		out = append(out, r)
	}
	return out, q.Err()
}

// fail names the operation and the store in err (nil stays nil).
func (l *Log) fail(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("eventlog: %s in %s: %w", what, l.name, err)
}
