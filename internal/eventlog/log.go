package eventlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by Get (and by List for a cursor) when the event is not in the
// log of that environment: never appended, or deleted by retention.
var ErrNotFound = errors.New("eventlog: event not found")

// ErrClosed is returned by Append after Close, and to an Append still queued when Close
// ran (it was not written). Other methods fail with database/sql's error after Close.
var ErrClosed = errors.New("eventlog: log is closed")

// Defaults of Options.
const (
	DefaultDedupWindow = 24 * time.Hour
	DefaultMaxBatch    = 2000
)

// Options configure Open.
type Options struct {
	// URL is the store: postgres://... or postgresql://... for PostgreSQL; sqlite:<path>,
	// sqlite://<path> or a plain file path for SQLite. Required.
	URL string
	// Now is the log's clock (received times, lease expiry, the dedup window); default
	// time.Now. Tests inject one.
	Now func() time.Time
	// DedupWindow: an event whose client id was appended within it (in the same
	// environment) is the same event and is not written again. Default 24h (Inngest's).
	DedupWindow time.Duration
	// MaxBatch caps the events of concurrent Append calls coalesced into one transaction
	// (group commit). One call with more events is still one transaction. Default 2000.
	MaxBatch int
}

// validate fills the defaults and rejects what Open cannot use, before anything connects.
func (o *Options) validate() error {
	if o.URL == "" {
		return errors.New("eventlog.Options: URL is required: postgres://user@host:5432/db or sqlite:<path>")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DedupWindow == 0 {
		o.DedupWindow = DefaultDedupWindow
	}
	if o.DedupWindow < 0 {
		return fmt.Errorf("eventlog.Options: DedupWindow %v is negative", o.DedupWindow)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxBatch < 0 {
		return fmt.Errorf("eventlog.Options: MaxBatch %d is negative", o.MaxBatch)
	}
	return nil
}

// Log is the event log on one store. Its methods are safe for concurrent use, also with
// other Logs (other processes) on the same store.
type Log struct {
	db   *sql.DB
	d    *dialect
	o    Options
	name string // the store as errors name it (no password)

	// wsem serializes this process's write transactions when the dialect needs it (SQLite:
	// one writer per file; waiting here beats SQLite's sleeping busy handler).
	wsem chan struct{}
	w    *writer
	// insertOne and dispatchOne are the dialect's, prepared (nil without).
	insertOne, dispatchOne *sql.Stmt
}

// Open validates o, connects to the store (failing fast with an error naming it, without
// its password), and creates or migrates the schema. Replicas opening the same store at
// once are safe: migrations are serialized in the store.
func Open(ctx context.Context, o Options) (*Log, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	d, db, name, err := connect(ctx, o.URL)
	if err != nil {
		return nil, err
	}
	l := &Log{db: db, d: d, o: o, name: name}
	if d.serialWrites {
		l.wsem = make(chan struct{}, 1)
	}
	if err := l.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("eventlog: schema of %s: %w", name, err)
	}
	for _, p := range []struct {
		query string
		st    **sql.Stmt
	}{{d.insertOne, &l.insertOne}, {d.dispatchOne, &l.dispatchOne}} {
		if p.query == "" {
			continue
		}
		if *p.st, err = db.PrepareContext(ctx, p.query); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("eventlog: prepare statements on %s: %w", name, err)
		}
	}
	l.w = startWriter(l)
	return l, nil
}

// connect picks the backend by the URL's form.
func connect(ctx context.Context, url string) (*dialect, *sql.DB, string, error) {
	if isPostgres(url) {
		db, name, err := openPostgres(ctx, url)
		return postgres, db, name, err
	}
	db, name, err := openSQLite(ctx, url)
	return sqlite, db, name, err
}

// Close stops taking appends, lets the transaction in flight finish (its callers get its
// outcome), fails the queued ones with ErrClosed, and closes the connections.
func (l *Log) Close() error {
	if !l.w.stop() {
		return nil
	}
	for _, st := range []*sql.Stmt{l.insertOne, l.dispatchOne} {
		if st != nil {
			_ = st.Close()
		}
	}
	return l.db.Close()
}

// Backend is "postgres" or "sqlite".
func (l *Log) Backend() string { return l.d.name }

func (l *Log) now() int64 { return l.o.Now().UnixMilli() }

// writeTx runs fn in one transaction, committed when fn returns nil. Transient conflicts
// between processes (PostgreSQL deadlock or serialization failures) retry the whole
// transaction a few times: fn must be safe to run again.
func (l *Log) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	if l.wsem != nil {
		select {
		case l.wsem <- struct{}{}:
			defer func() { <-l.wsem }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = l.tryTx(ctx, fn); err == nil || !l.d.retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (l *Log) tryTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
