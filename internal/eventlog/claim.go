package eventlog

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"time"
)

// Claim leases to the caller, until leaseUntil, up to limit events of env that are not
// dispatched and whose lease has expired (lease_until <= now), oldest (lowest Seq) first,
// and returns them in that order. Concurrent Claims, also by other processes, never get
// the same event while its lease holds (PostgreSQL: FOR UPDATE SKIP LOCKED, so they pass
// each other's rows without waiting; SQLite: one write transaction at a time).
func (l *Log) Claim(ctx context.Context, env string, limit int, leaseUntil time.Time) ([]Record, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []Record
	err := l.writeTx(ctx, func(tx *sql.Tx) error {
		q, err := tx.QueryContext(ctx, `UPDATE tempest_events SET lease_until_ms = $1
			WHERE seq IN (
				SELECT seq FROM `+l.d.pending+`
				WHERE env = $2 AND dispatched_at_ms IS NULL AND lease_until_ms <= $3
				ORDER BY seq LIMIT $4`+l.d.skipLocked+`)
			RETURNING `+columns,
			leaseUntil.UnixMilli(), env, l.now(), limit)
		if err != nil {
			return err
		}
		out, err = scanRecords(q)
		return err
	})
	if err != nil {
		return nil, l.fail("claim events", err)
	}
	// RETURNING follows no order.
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// Retry sets the lease of the undispatched events among ids to at: a failed dispatch is
// taken up by Claim from then on (by any process). Dispatched events and unknown ids are
// left alone.
func (l *Log) Retry(ctx context.Context, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg := oneOf(l.d, "internal_id", 2, ids)
	err := l.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tempest_events SET lease_until_ms = $1
			WHERE dispatched_at_ms IS NULL AND `+cond, at.UnixMilli(), arg)
		return err
	})
	return l.fail("retry events", err)
}

// Dispatched records what dispatch did with each event (its runs, or why it started none)
// and marks the events dispatched, all in one transaction: Claim skips them from then on.
// Idempotent: recording an event again overwrites Runs and Reason and keeps the first
// DispatchedAt. An id not in the log (deleted by retention meanwhile) is skipped; for an
// id given twice, the last outcome counts.
func (l *Log) Dispatched(ctx context.Context, ds []Dispatch) error {
	if len(ds) == 0 {
		return nil
	}
	last := make(map[string]int, len(ds))
	for i, d := range ds {
		last[d.InternalID] = i
	}
	uniq := make([]Dispatch, 0, len(last))
	for i, d := range ds {
		if last[d.InternalID] == i {
			uniq = append(uniq, d)
		}
	}
	err := l.writeTx(ctx, func(tx *sql.Tx) error {
		if l.dispatchOne == nil {
			return l.d.dispatched(ctx, tx, uniq, l.now())
		}
		st, now := tx.StmtContext(ctx, l.dispatchOne), l.now()
		for _, d := range uniq {
			if _, err := st.ExecContext(ctx, now, encodeRuns(d.Runs), d.Reason, d.InternalID); err != nil {
				return err
			}
		}
		return nil
	})
	return l.fail("record dispatch", err)
}

// Pending counts the events of env not yet dispatched (leased or not).
func (l *Log) Pending(ctx context.Context, env string) (int64, error) {
	var n int64
	err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+l.d.pending+` WHERE env = $1 AND dispatched_at_ms IS NULL`, env).Scan(&n)
	return n, l.fail("count pending events", err)
}

// encodeRuns is the runs column: a JSON array, NULL for none.
func encodeRuns(runs []string) *string {
	if len(runs) == 0 {
		return nil
	}
	b, _ := json.Marshal(runs) // []string cannot fail
	s := string(b)
	return &s
}
