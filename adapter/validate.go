package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Limits of a sent event, checked before anything starts so that Temporal never refuses
// the run (its default limit on a Keyword search attribute is 2 KiB; the name is one, and a
// name of 256 bytes JSON-escapes to at most 1538).
const (
	// MaxSentEventNameLength is Inngest's documented limit on event names, in bytes.
	MaxSentEventNameLength = 256
	// MaxEventIDLength bounds a client's id (a dedup key in Redis), in bytes.
	MaxEventIDLength = 512
)

// Bounds of an event's ts, as Inngest validates them.
var (
	minTS = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxTS = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
)

func (a *App) validate(raw json.RawMessage, now time.Time, internal bool) (*accepted, error) {
	// Tempest's own events (a large batch's function.finished carries its events) are not
	// held to the size limit of clients' events.
	if !internal && len(raw) > a.opts.MaxEventSize {
		return nil, fmt.Errorf("Event is over the max size: Max %d bytes / Size %d bytes", a.opts.MaxEventSize, len(raw))
	}
	var ev inbound
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("invalid event: %v", err)
	}
	switch {
	case ev.Name == "":
		return nil, errors.New("event name is empty")
	case len(ev.Name) > MaxSentEventNameLength:
		return nil, fmt.Errorf("event name is %d bytes; at most %d are allowed", len(ev.Name), MaxSentEventNameLength)
	case strings.ContainsFunc(ev.Name, isControl):
		// PostgreSQL visibility cannot index U+0000; the others are surely mistakes.
		return nil, fmt.Errorf("event name must not contain control characters: %q", ev.Name)
	case !internal && strings.HasPrefix(strings.ToLower(ev.Name), "inngest/"):
		return nil, fmt.Errorf("event name is reserved for internal use: %s", ev.Name)
	case len(ev.ID) > MaxEventIDLength:
		return nil, fmt.Errorf("event id is %d bytes; at most %d are allowed", len(ev.ID), MaxEventIDLength)
	}
	if d := bytes.TrimSpace(ev.Data); len(d) == 0 || bytes.Equal(d, []byte("null")) {
		ev.Data = json.RawMessage("{}")
	} else if d[0] != '{' {
		return nil, errors.New("event data must be a JSON object")
	}
	if u := bytes.TrimSpace(ev.User); len(u) == 0 || bytes.Equal(u, []byte("null")) {
		ev.User = json.RawMessage("{}")
	} else if u[0] != '{' {
		return nil, errors.New("event user must be a JSON object")
	}
	if ev.TS == 0 {
		ev.TS = now.UnixMilli()
	} else if ev.TS < minTS || ev.TS > maxTS {
		return nil, fmt.Errorf("event ts %d is not a unix time in milliseconds between 1980 and 2100", ev.TS)
	}
	return &accepted{ev: ev}, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// normalize builds the event functions receive: the user's id or else the internal id, and
// (for events from clients) data without the reserved "_inngest" key.
func (e *accepted) normalize(internal bool) error {
	if !internal && bytes.Contains(e.ev.Data, []byte(`"_inngest"`)) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(e.ev.Data, &m); err != nil {
			return fmt.Errorf("event data: %v", err)
		}
		delete(m, "_inngest")
		e.ev.Data, _ = json.Marshal(m)
	}
	if e.ev.ID == "" {
		e.ev.ID = e.internal.String()
	}
	b, err := json.Marshal(e.ev)
	if err != nil {
		return err
	}
	e.norm = b
	return nil
}
