package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// ErrInvalid is wrapped by Append's errors for records it cannot store as they are.
var ErrInvalid = errors.New("eventlog: invalid event")

// Append writes the events of one request, for environment env, atomically (all or none)
// and durably (committed) before it returns, and answers for each event, in order, its id
// in the log and whether this call wrote it.
//
// Dedup: an event whose (env, ClientID) was appended less than DedupWindow ago is not
// written again (Appended.InternalID is the first one's); nor is an event whose InternalID
// is already in the log (a retried request with the same seed). Duplicates in one call, or
// in concurrent calls (also from other processes on one PostgreSQL), resolve to one row. A
// ClientID whose row is DedupWindow old or older makes a new event; the old row stays.
//
// New events are leased until leaseUntil: the caller dispatches them, and Claim by anyone
// waits for the lease to expire. A Record with DispatchedAt set is written as dispatched,
// with its Runs and Reason, in the same transaction (one write for an event its caller
// dispatched before appending it and can dispatch again, idempotently, if the append
// fails); an existing event found by dedup keeps its own state.
//
// Group commit: concurrent calls on one Log share a transaction (up to MaxBatch events; a
// larger call is one transaction of its own), so many small requests cost one commit, not
// one each. A failed transaction fails every call in it; each may retry (dedup makes that
// safe). A call whose ctx ends before its transaction begins is not written; one whose ctx
// ends during it returns ctx.Err() at once and may or may not have been written (retry with
// the same InternalIDs to find out). The others of its transaction are unaffected. The
// Event bytes are read until the transaction ends, which may be after such a call
// returned: do not modify them.
func (l *Log) Append(ctx context.Context, env string, recs []Record, leaseUntil time.Time) ([]Appended, error) {
	rows, err := l.rows(env, recs, leaseUntil)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return []Appended{}, nil
	}
	return l.w.append(ctx, rows)
}

// rows checks recs and turns them into rows (hashing client ids here, in parallel across
// callers, not in the writer).
func (l *Log) rows(env string, recs []Record, leaseUntil time.Time) ([]*row, error) {
	if !validText(env) {
		return nil, fmt.Errorf("%w: environment %q: use valid UTF-8 without NUL bytes", ErrInvalid, env)
	}
	now := l.now()
	rows := make([]*row, len(recs))
	for i, rec := range recs {
		if id, err := ulid.ParseStrict(rec.InternalID); err != nil || id.String() != rec.InternalID {
			return nil, fmt.Errorf("%w: event %d: internal id %q is not a ULID in canonical form (26 upper-case Crockford base32 characters)", ErrInvalid, i, rec.InternalID)
		}
		if !validText(rec.Name) {
			return nil, fmt.Errorf("%w: event %d: name %q: use valid UTF-8 without NUL bytes", ErrInvalid, i, rec.Name)
		}
		r := &row{
			env: env, id: rec.InternalID, name: rec.Name, event: rec.Event,
			key: dedupKey(env, rec.ClientID), received: now, lease: leaseUntil.UnixMilli(),
		}
		if rec.ClientID != "" {
			r.client = []byte(rec.ClientID)
		}
		if r.event == nil {
			r.event = []byte{} // NOT NULL
		}
		if !rec.ReceivedAt.IsZero() {
			r.received = rec.ReceivedAt.UnixMilli()
		}
		if rec.DispatchedAt != nil {
			at := rec.DispatchedAt.UnixMilli()
			r.dispatched, r.runs, r.reason = &at, encodeRuns(rec.Runs), rec.Reason
		}
		rows[i] = r
	}
	return rows, nil
}

// validText is what a PostgreSQL text column takes.
func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
