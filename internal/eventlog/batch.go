package eventlog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
)

// row is one event of an Append call on its way into the log.
type row struct {
	env, id, name      string
	client, key, event []byte // key: dedupKey, nil without a client id
	received, lease    int64
	// dispatched (Unix ms, nil: not yet), runs and reason: an event appended already
	// dispatched (Record.DispatchedAt set).
	dispatched *int64
	runs       *string
	reason     string

	// rep is the earlier event of the same transaction this one is a duplicate of (nil:
	// the event is written, or found in the log, itself).
	rep *row
	// out and isNew are the outcome for a row without rep.
	out   string
	isNew bool
}

// dedupKey identifies a client id in an environment. A hash keeps the unique index small
// and fixed-size whatever the client sent (up to 512 bytes, any bytes); env holds no NUL
// (validText), so the pair is unambiguous.
func dedupKey(env, clientID string) []byte {
	if clientID == "" {
		return nil
	}
	h := sha256.New()
	h.Write([]byte(env))
	h.Write([]byte{0})
	h.Write([]byte(clientID))
	return h.Sum(nil)
}

// result is the outcome of the row's event for its caller.
func (r *row) result() Appended {
	if r.rep != nil {
		return Appended{InternalID: r.rep.out}
	}
	return Appended{InternalID: r.out, New: r.isNew}
}

// batch is the events of the Append calls that share one transaction.
type batch struct {
	rows []*row // the distinct events, in the order of their calls
	keys [][]byte
}

// newBatch resolves duplicates inside the transaction up front (the same client id, or the
// same internal id, twice): the store sees each event once and the later ones share the
// first one's outcome.
func newBatch(calls [][]*row) *batch {
	b := &batch{}
	byKey, byID := map[string]*row{}, map[string]*row{}
	for _, rows := range calls {
		for _, r := range rows {
			r.rep = nil
			if r.key != nil {
				if first := byKey[string(r.key)]; first != nil {
					r.rep = first
					continue
				}
			}
			if first := byID[r.id]; first != nil {
				r.rep = first
				continue
			}
			b.rows = append(b.rows, r)
			byID[r.id] = r
			if r.key != nil {
				byKey[string(r.key)] = r
				b.keys = append(b.keys, r.key)
			}
		}
	}
	return b
}

// errVanished: an event the insert conflicted with was gone by the time it was looked up
// (retention deleted it in between). Rare; the caller retries.
var errVanished = errors.New("eventlog: an event this append conflicted with was deleted meanwhile: retry the append")

// write is the transaction of a batch. It may run more than once (writeTx retries), so it
// sets every outcome afresh.
func (b *batch) write(ctx context.Context, l *Log, tx *sql.Tx) error {
	if len(b.keys) > 0 {
		if l.d.lockKeys != nil {
			if err := l.d.lockKeys(ctx, tx, b.keys); err != nil {
				return fmt.Errorf("lock client ids: %w", err)
			}
		}
		// A client id's window ended: its old row gives the key up (and stays listable), so
		// the insert below writes the new event.
		cond, keys := oneOf(l.d, "dedup_key", 2, b.keys)
		cutoff := l.now() - l.o.DedupWindow.Milliseconds()
		if _, err := tx.ExecContext(ctx, `UPDATE tempest_events SET dedup_key = NULL
			WHERE `+cond+` AND received_at_ms <= $1`, cutoff, keys); err != nil {
			return fmt.Errorf("release expired client ids: %w", err)
		}
	}
	var written map[string]bool
	var err error
	if len(b.rows) == 1 && l.insertOne != nil {
		written, err = insertOne(ctx, tx.StmtContext(ctx, l.insertOne), b.rows[0])
	} else {
		written, err = l.d.insert(ctx, tx, b.rows)
	}
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	var taken []*row
	for _, r := range b.rows {
		r.isNew, r.out = written[r.id], r.id
		if !r.isNew {
			taken = append(taken, r)
		}
	}
	if len(taken) > 0 {
		return resolveTaken(ctx, l.d, tx, taken)
	}
	return nil
}

// insertOne writes r with the dialect's insertOne statement.
func insertOne(ctx context.Context, st *sql.Stmt, r *row) (map[string]bool, error) {
	res, err := st.ExecContext(ctx, r.env, r.id, r.client, r.key, r.name, r.event, r.received, r.lease, r.dispatched, r.runs, r.reason)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	return map[string]bool{r.id: n == 1}, nil
}

// resolveTaken sets the outcome of rows the insert skipped to the event already in the
// log: the one holding the client id's key if any, else the one with the same internal id.
func resolveTaken(ctx context.Context, d *dialect, tx *sql.Tx, rows []*row) error {
	var keys [][]byte
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
		if r.key != nil {
			keys = append(keys, r.key)
		}
	}
	cond, idArg := oneOf(d, "internal_id", 1, ids)
	args := []any{idArg}
	if len(keys) > 0 {
		kcond, keyArg := oneOf(d, "dedup_key", 2, keys)
		cond, args = cond+" OR "+kcond, append(args, keyArg)
	}
	q, err := tx.QueryContext(ctx, `SELECT internal_id, dedup_key FROM tempest_events WHERE `+cond, args...)
	if err != nil {
		return fmt.Errorf("look up existing events: %w", err)
	}
	defer q.Close()
	byKey, byID := map[string]string{}, map[string]bool{}
	for q.Next() {
		var id string
		var key []byte
		if err := q.Scan(&id, &key); err != nil {
			return err
		}
		byID[id] = true
		if key != nil {
			byKey[string(key)] = id
		}
	}
	if err := q.Err(); err != nil {
		return err
	}
	for _, r := range rows {
		if id, ok := byKey[string(r.key)]; ok && r.key != nil {
			r.out = id
		} else if !byID[r.id] {
			return errVanished
		}
	}
	return nil
}

// scanIDs reads a column of internal ids.
func scanIDs(q *sql.Rows) (map[string]bool, error) {
	defer q.Close()
	out := map[string]bool{}
	for q.Next() {
		var id string
		if err := q.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, q.Err()
}
