package eventlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqliteBusyTimeout is how long a write waits for another process's write lock on the same
// file before it fails with SQLITE_BUSY (writes in one process queue in Go instead).
const sqliteBusyTimeout = 10_000 // ms

// sqliteMaxConns bounds one Log's connections to the file (each has its own page cache).
const sqliteMaxConns = 8

// sqliteInsertRows is how many rows one INSERT binds (11 placeholders each).
const sqliteInsertRows = 64

var sqlite = &dialect{
	name: "sqlite",
	// AUTOINCREMENT: without it SQLite reuses the highest seq after it was deleted, and
	// log order (and List cursors) would go back in time.
	createEvents: `CREATE TABLE tempest_events (
		seq              INTEGER PRIMARY KEY AUTOINCREMENT,
		env              TEXT    NOT NULL,
		internal_id      TEXT    NOT NULL,
		client_id        BLOB,
		dedup_key        BLOB,
		name             TEXT    NOT NULL,
		event            BLOB    NOT NULL,
		received_at_ms   INTEGER NOT NULL,
		lease_until_ms   INTEGER NOT NULL,
		dispatched_at_ms INTEGER,
		runs             TEXT,
		reason           TEXT    NOT NULL DEFAULT ''
	)`,
	pending:      "tempest_events INDEXED BY tempest_events_pending",
	serialWrites: true,
	insert:       sqliteInsert,
	// A single-row insert without RETURNING needs no statement journal (whose 64 KiB
	// buffer SQLite allocates and frees per statement), and prepared once it is not parsed
	// per request: an idle intake's commit, 0.86 -> 0.5 ms.
	insertOne: `INSERT INTO tempest_events
		(env, internal_id, client_id, dedup_key, name, event, received_at_ms, lease_until_ms,
		 dispatched_at_ms, runs, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	// One update per event, prepared once.
	dispatchOne: `UPDATE tempest_events
		SET dispatched_at_ms = COALESCE(dispatched_at_ms, $1), runs = $2, reason = $3
		WHERE internal_id = $4`,
	retryable: func(error) bool { return false }, // the busy timeout already waited
}

// sqlitePath is the file of a sqlite:<path>, sqlite://<path> or plain-path URL.
func sqlitePath(u string) (string, error) {
	p := strings.TrimPrefix(strings.TrimPrefix(u, "sqlite:"), "//")
	switch {
	case p == "":
		return "", fmt.Errorf("eventlog: SQLite URL %q has no path: use sqlite:<path>, e.g. sqlite:.tempest/events.db", u)
	case strings.Contains(p, "?"):
		return "", fmt.Errorf("eventlog: SQLite path %q contains '?': use a path without one (options are fixed)", p)
	case p == ":memory:" || strings.HasPrefix(p, "file:"):
		return "", fmt.Errorf("eventlog: SQLite %q: use a file path (the log must be on disk, shared by its connections)", p)
	}
	return p, nil
}

// openSQLite opens the file in WAL mode (readers never wait for the writer) with
// synchronous=FULL (a committed append survives power loss), a busy timeout for other
// processes on the same file, and BEGIN IMMEDIATE transactions (the write lock is taken
// at BEGIN, so a transaction that reads before it writes cannot fail with an unresolvable
// SQLITE_BUSY).
func openSQLite(ctx context.Context, u string) (*sql.DB, string, error) {
	path, err := sqlitePath(u)
	if err != nil {
		return nil, u, err
	}
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate",
		path, sqliteBusyTimeout)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, path, fmt.Errorf("eventlog: SQLite %s: %w", path, err)
	}
	// Readers run in parallel with the one writer (WAL); keeping the connections open
	// spares each query opening the file and running the pragmas again.
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, path, fmt.Errorf("eventlog: open SQLite %s (does its directory exist and is it writable?): %w", path, err)
	}
	return db, path, nil
}

// sqliteInsert writes the rows sqliteInsertRows at a time (no network: more statements cost
// little, and smaller ones bind faster). Its placeholders are plain '?': the driver matches
// each "$n" against every argument by formatting numbers, quadratic in allocations, which
// cost more than the insert itself at this size.
func sqliteInsert(ctx context.Context, tx *sql.Tx, rows []*row) (map[string]bool, error) {
	out := map[string]bool{}
	for _, part := range chunks(rows, sqliteInsertRows) {
		var b strings.Builder
		b.WriteString(`INSERT INTO tempest_events
			(env, internal_id, client_id, dedup_key, name, event, received_at_ms, lease_until_ms,
			 dispatched_at_ms, runs, reason) VALUES `)
		args := make([]any, 0, 11*len(part))
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, r.env, r.id, r.client, r.key, r.name, r.event, r.received, r.lease, r.dispatched, r.runs, r.reason)
		}
		b.WriteString(" ON CONFLICT DO NOTHING RETURNING internal_id")
		q, err := tx.QueryContext(ctx, b.String(), args...)
		if err != nil {
			return nil, err
		}
		ids, err := scanIDs(q)
		if err != nil {
			return nil, err
		}
		for id := range ids {
			out[id] = true
		}
	}
	return out, nil
}
