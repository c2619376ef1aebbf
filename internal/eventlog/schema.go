package eventlog

import (
	"context"
	"database/sql"
	"fmt"
)

// The events table (column types per backend in postgres.go and sqlite.go):
//
//	seq              log order, assigned by the store, never reused
//	env              the environment
//	internal_id      the ULID, unique in the log
//	client_id        the client's own id, raw bytes (NULL for none)
//	dedup_key        sha256(env, 0, client_id) while the event holds its client id's dedup
//	                 window; NULL for no client id, and set to NULL when a later event with
//	                 the same client id arrives after the window (the old row stays listable)
//	name             the event name
//	event            the event JSON, opaque
//	received_at_ms   Unix ms
//	lease_until_ms   Unix ms; the undispatched event belongs to whoever leased it until then
//	dispatched_at_ms Unix ms; NULL until dispatched
//	runs             JSON array of run ids (NULL for none)
//	reason           why the event started no run ("" otherwise)
//
// indexes are the first migration's, shared by both backends.
var indexes = []string{
	`CREATE UNIQUE INDEX tempest_events_internal_id ON tempest_events (internal_id)`,
	// Partial: most events carry no client id, and those need no entry.
	`CREATE UNIQUE INDEX tempest_events_dedup_key ON tempest_events (dedup_key) WHERE dedup_key IS NOT NULL`,
	// Claim's scan: only undispatched events, in log order.
	`CREATE INDEX tempest_events_pending ON tempest_events (env, seq) WHERE dispatched_at_ms IS NULL`,
	`CREATE INDEX tempest_events_env_seq ON tempest_events (env, seq)`,
	`CREATE INDEX tempest_events_env_name_seq ON tempest_events (env, name, seq)`,
	`CREATE INDEX tempest_events_received ON tempest_events (received_at_ms)`,
}

// migrations are the schema versions in order: migration i+1 is migrations(d)[i]. Append
// new versions; never edit an applied one.
func migrations(d *dialect) [][]string {
	return [][]string{
		append([]string{d.createEvents}, indexes...),
	}
}

// migrate brings the schema to the newest version in one transaction, which other
// replicas' migrations wait for (PostgreSQL: an advisory lock; SQLite: the write lock).
func (l *Log) migrate(ctx context.Context) error {
	return l.writeTx(ctx, func(tx *sql.Tx) error {
		if l.d.migrationLock != "" {
			if _, err := tx.ExecContext(ctx, l.d.migrationLock); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS tempest_eventlog_migrations (
			version       INTEGER PRIMARY KEY,
			applied_at_ms BIGINT  NOT NULL
		)`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM tempest_eventlog_migrations`).Scan(&have); err != nil {
			return err
		}
		all := migrations(l.d)
		if have > len(all) {
			return fmt.Errorf("the schema is at version %d, newer than this binary knows (%d): run a newer tempest", have, len(all))
		}
		for v := have + 1; v <= len(all); v++ {
			for _, stmt := range all[v-1] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migration %d: %w", v, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO tempest_eventlog_migrations (version, applied_at_ms) VALUES ($1, $2)`, v, l.now()); err != nil {
				return err
			}
		}
		return nil
	})
}
