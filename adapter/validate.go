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
		return nil, decodeError(err)
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
		return nil, fmt.Errorf("event data must be a JSON object, not %s", kindOf(d))
	}
	if u := bytes.TrimSpace(ev.User); len(u) == 0 || bytes.Equal(u, []byte("null")) {
		ev.User = json.RawMessage("{}")
	} else if u[0] != '{' {
		return nil, fmt.Errorf("event user must be a JSON object, not %s", kindOf(u))
	}
	if ev.TS == 0 {
		ev.TS = now.UnixMilli()
	} else if ev.TS < minTS || ev.TS > maxTS {
		return nil, fmt.Errorf("event ts %d is not a unix time in milliseconds between 1980 and 2100", ev.TS)
	}
	return &accepted{ev: ev}, nil
}

// decodeError says which field of the event has the wrong type, in JSON's terms.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("event is not valid JSON: %v", err)
	}
	got, literal := te.Value, ""
	if n, ok := strings.CutPrefix(got, "number "); ok { // a number that does not fit the field
		got, literal = "number", n
	}
	if a, ok := map[string]string{"number": "a number", "string": "a string", "bool": "a boolean",
		"array": "an array", "object": "an object"}[got]; ok {
		got = a
	}
	switch te.Field {
	case "":
		return fmt.Errorf("event must be a JSON object, not %s", got)
	case "ts":
		if literal != "" {
			return fmt.Errorf("event ts %s is not a whole number of unix milliseconds between 1980 and 2100", literal)
		}
		return fmt.Errorf("event ts must be a number (unix milliseconds), not %s", got)
	default: // name, id, v
		return fmt.Errorf("event %s must be a string, not %s", te.Field, got)
	}
}

// kindOf names the kind of a JSON value that is not an object.
func kindOf(v []byte) string {
	switch v[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
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
