package eventlog

import "time"

// Record is one event in the log.
type Record struct {
	// Seq is the event's place in log order, assigned by the store when it is appended:
	// increasing, never reused (also after retention deleted the newest events). On
	// PostgreSQL, concurrent transactions take numbers before they commit, so an event may
	// become visible after one with a higher Seq.
	Seq int64
	// InternalID is the event's ULID (26 characters), unique in the log.
	InternalID string
	// ClientID is the event's own "id" field as the client sent it ("" for none); it is
	// the dedup key within the dedup window. Any bytes are kept as they are.
	ClientID string
	// Name is the event's name: valid UTF-8 without NUL bytes (PostgreSQL text).
	Name string
	// Event is the event JSON as functions see it (opaque to the log).
	Event []byte
	// ReceivedAt is when the event was received, at millisecond precision, in UTC. Append
	// takes the caller's value, or the log's clock when it is zero.
	ReceivedAt time.Time
	// DispatchedAt is when Dispatched first recorded the event (nil until then).
	DispatchedAt *time.Time
	// Runs are the run ids the dispatch started or listed (set by Dispatched; nil for none).
	Runs []string
	// Reason says why the event started no run (set by Dispatched; "" otherwise).
	Reason string
}

// Appended is what Append did with one event of the request.
type Appended struct {
	// InternalID is the event's id in the log: its own when New, otherwise that of the
	// event already there (same client id within the window, or the same internal id).
	InternalID string
	// New is true when this call wrote the event (and so owns its dispatch, leased to it).
	New bool
}

// Dispatch is the outcome of dispatching one event, for Dispatched.
type Dispatch struct {
	InternalID string
	Runs       []string
	Reason     string
}

// Filter selects the events List returns.
type Filter struct {
	// Name keeps only events of this name ("" any).
	Name string
	// After and Before bound ReceivedAt to the half-open interval [After, Before), at
	// millisecond precision, so consecutive windows neither overlap nor leave a gap; a zero
	// time leaves that side unbounded.
	After, Before time.Time
	// Cursor is an InternalID from a previous page: only events before it in log order are
	// returned (the next page, newest first). An id not in the environment's log is
	// ErrNotFound.
	Cursor string
	// Limit caps the events returned: 0 (or negative) is 20, more than 100 is 100.
	Limit int
}

// Limits of Filter.Limit.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
)
