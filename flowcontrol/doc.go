// Package flowcontrol keeps Tempest's coordination state in Redis, one Lua script per file
// with its KEYS/ARGV/returns contract:
//
//   - admission of starts (admit.go, admit.lua): rate limits, idempotency keys and
//     throttle slots (GCRA), decided once per run and remembered for retried decisions;
//   - the throttle gate a run passes where it begins (gate.go);
//   - debounce and batch buffers (buffer.go) and singleton locks (singleton.go);
//   - concurrency leases (concurrency.go) and the notices that wake steps waiting for a
//     slot (slots.go);
//   - the index of runs waiting for events and of cancelOn rules (waits.go);
//   - cancel requests (cancel.go) and large payloads stored by reference (payloads.go).
//
// Keys start with "tempest:"; the keys one script touches share a hash tag (a function,
// a concurrency limit, an event name), so Redis Cluster keeps them in one slot. Every key
// expires or is removed by its owner.
package flowcontrol
