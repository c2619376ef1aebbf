// Package eventlog is the durable intake of the event API: every accepted event is
// committed to a SQL log (PostgreSQL, or SQLite for the dev server) before the API answers,
// runs are dispatched from it afterwards, and the REST API lists events from it.
//
// The log owns three guarantees the rest of Tempest builds on:
//
//   - Durability: Append returns only after the transaction holding the events committed
//     (PostgreSQL with synchronous_commit as the server has it, on by default; SQLite with
//     synchronous=FULL in WAL mode).
//   - Dedup: an event is in the log once, whether its client retried the same request (the
//     same internal id, derived from the SDK's seed) or sent the same client id again within
//     the dedup window; racing appenders, also from other processes, resolve to one row.
//   - Leased dispatch: a new event is leased to the process that appended it; when that
//     process dies or its dispatch fails, the lease expires and Claim hands the event to
//     exactly one other claimer at a time.
//
// Times are stored as Unix milliseconds (BIGINT on both backends), so both share one set
// of queries and compare times the same way. What differs (column types, how lists and
// bulk rows are bound, locking) is in the dialect values of postgres.go and sqlite.go.
package eventlog
