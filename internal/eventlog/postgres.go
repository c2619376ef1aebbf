package eventlog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgMaxConns bounds one Log's connections: PostgreSQL's max_connections (100 by default)
// is shared with Temporal and every other replica.
const pgMaxConns = 10

// pgConnectTimeout applies when the URL sets no connect_timeout, so Open fails fast on an
// unreachable server.
const pgConnectTimeout = 10 * time.Second

// pgMigrationLock is the advisory lock key of migrations (any constant unlikely to be
// used by another application on the database: "tempest\x00" as a big-endian int64).
const pgMigrationLock = 0x74656d7065737400

func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

var postgres = &dialect{
	name: "postgres",
	createEvents: `CREATE TABLE tempest_events (
		seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		env              TEXT   NOT NULL,
		internal_id      TEXT   NOT NULL,
		client_id        BYTEA,
		dedup_key        BYTEA,
		name             TEXT   NOT NULL,
		event            BYTEA  NOT NULL,
		received_at_ms   BIGINT NOT NULL,
		lease_until_ms   BIGINT NOT NULL,
		dispatched_at_ms BIGINT,
		runs             TEXT,
		reason           TEXT   NOT NULL DEFAULT ''
	)`,
	migrationLock: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, int64(pgMigrationLock)),
	pending:       "tempest_events",
	skipLocked:    " FOR UPDATE SKIP LOCKED",
	arrays:        true,
	insert:        pgInsert,
	dispatched:    pgDispatched,
	lockKeys:      pgLockKeys,
	retryable:     pgRetryable,
}

func openPostgres(ctx context.Context, raw string) (*sql.DB, string, error) {
	name := raw
	if u, err := url.Parse(raw); err == nil {
		name = u.Redacted()
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, name, fmt.Errorf("eventlog: PostgreSQL URL %s: %w", name, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pgMaxConns)
	db.SetMaxIdleConns(pgMaxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, name, fmt.Errorf("eventlog: connect to PostgreSQL at %s (is it running, and does the database exist?): %w", name, err)
	}
	return db, name, nil
}

// pgInsert writes all rows with one statement: the columns as arrays, unnested in order
// (WITH ORDINALITY) so seq follows the rows' order.
func pgInsert(ctx context.Context, tx *sql.Tx, rows []*row) (map[string]bool, error) {
	n := len(rows)
	env, id, name := make([]string, n), make([]string, n), make([]string, n)
	client, key, event := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	received, lease := make([]int64, n), make([]int64, n)
	dispatched, runs, reason := make([]*int64, n), make([]*string, n), make([]string, n)
	for i, r := range rows {
		env[i], id[i], name[i] = r.env, r.id, r.name
		client[i], key[i], event[i] = r.client, r.key, r.event
		received[i], lease[i] = r.received, r.lease
		dispatched[i], runs[i], reason[i] = r.dispatched, r.runs, r.reason
	}
	q, err := tx.QueryContext(ctx, `INSERT INTO tempest_events
		(env, internal_id, client_id, dedup_key, name, event, received_at_ms, lease_until_ms, dispatched_at_ms, runs, reason)
		SELECT env, internal_id, client_id, dedup_key, name, event, received_at_ms, lease_until_ms, dispatched_at_ms, runs, reason
		FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::bytea[], $7::int8[], $8::int8[],
				$9::int8[], $10::text[], $11::text[])
			WITH ORDINALITY AS r(env, internal_id, client_id, dedup_key, name, event, received_at_ms, lease_until_ms,
				dispatched_at_ms, runs, reason, ord)
		ORDER BY ord
		ON CONFLICT DO NOTHING
		RETURNING internal_id`,
		env, id, client, key, name, event, received, lease, dispatched, runs, reason)
	if err != nil {
		return nil, err
	}
	return scanIDs(q)
}

// pgDispatched updates all events with one statement.
func pgDispatched(ctx context.Context, tx *sql.Tx, ds []Dispatch, now int64) error {
	ids, runs, reasons := make([]string, len(ds)), make([]*string, len(ds)), make([]string, len(ds))
	for i, d := range ds {
		ids[i], runs[i], reasons[i] = d.InternalID, encodeRuns(d.Runs), d.Reason
	}
	_, err := tx.ExecContext(ctx, `UPDATE tempest_events AS e
		SET dispatched_at_ms = COALESCE(e.dispatched_at_ms, $1), runs = d.runs, reason = d.reason
		FROM unnest($2::text[], $3::text[], $4::text[]) AS d(internal_id, runs, reason)
		WHERE e.internal_id = d.internal_id`,
		now, ids, runs, reasons)
	return err
}

// pgLockKeys takes a transaction-scoped advisory lock per dedup key, in ascending order, so
// two processes appending overlapping client ids in different orders queue up instead of
// deadlocking in the unique index (PostgreSQL detects that only after deadlock_timeout,
// 1 s by default). The key is the dedup hash's first 8 bytes; two keys sharing them only
// wait for each other.
func pgLockKeys(ctx context.Context, tx *sql.Tx, keys [][]byte) error {
	locks := make([]int64, len(keys))
	for i, k := range keys {
		locks[i] = int64(binary.BigEndian.Uint64(k))
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	_, err := tx.ExecContext(ctx, `SELECT count(pg_advisory_xact_lock(k))
		FROM (SELECT k FROM unnest($1::int8[]) AS k ORDER BY k) AS s`, locks)
	return err
}

// pgRetryable: deadlock_detected and serialization_failure abort only the transaction that
// lost; running it again succeeds.
func pgRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
