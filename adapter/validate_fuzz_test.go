package adapter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/internal/ids"
)

// Any event body validates or fails with an error, never a panic. An accepted event obeys
// the documented rules, and its normalized form (what functions receive) is itself a valid
// event that normalizes to the same bytes.
func FuzzValidate(f *testing.F) {
	for _, ev := range []string{
		`{"name":"a/b"}`, `{"name":"a/b","data":{"x":1},"user":{"id":"u"},"ts":1700000000000,"v":"1","id":"e1"}`,
		`{"name":"a/b","data":null,"user":null}`, `{"name":"a/b","data":{"_inngest":{"x":1},"k":"<&>"}}`,
		`{"name":"a/b","data":{"nested":{"_inngest":1}}}`, `{"name":"a/b","data":[1]}`, `{"name":"a/b","data":"s"}`,
		`{"name":""}`, `{"name":1}`, `{"name":"inngest/function.failed"}`, `{"name":"a\u0000b"}`,
		`{"name":"a/b","ts":1}`, `{"name":"a/b","ts":1.5}`, `{"name":"a/b","ts":"1"}`, `{"name":"a/b","ts":99999999999999999999}`,
		`{"name":"` + strings.Repeat("n", 257) + `"}`, `{"name":"a/b","id":"` + strings.Repeat("i", 513) + `"}`,
		`[]`, `null`, `"x"`, `{`, `{"name":"a/b","name":"c/d"}`, `{"name":"\ud800"}`, "{\"name\":\"\xff\"}",
	} {
		f.Add([]byte(ev), false)
		f.Add([]byte(ev), true)
	}
	now := time.UnixMilli(1_750_000_000_000)
	a := &App{opts: Options{MaxEventSize: 4 << 10}}
	f.Fuzz(func(t *testing.T, raw []byte, internal bool) {
		e, err := a.validate(raw, now, internal)
		if err != nil {
			return
		}
		ev := e.ev
		switch {
		case ev.Name == "" || len(ev.Name) > MaxSentEventNameLength || strings.ContainsFunc(ev.Name, isControl):
			t.Fatalf("%q: accepted name %q", raw, ev.Name)
		case !internal && strings.HasPrefix(strings.ToLower(ev.Name), "inngest/"):
			t.Fatalf("%q: accepted a reserved name from a client", raw)
		case len(ev.ID) > MaxEventIDLength:
			t.Fatalf("%q: accepted an id of %d bytes", raw, len(ev.ID))
		case !isObject(ev.Data) || !isObject(ev.User):
			t.Fatalf("%q: data %s, user %s", raw, ev.Data, ev.User)
		case ev.TS < minTS || ev.TS > maxTS:
			t.Fatalf("%q: ts %d", raw, ev.TS)
		}
		e.internal = ids.NewEventID(now)
		if err := e.normalize(internal); err != nil {
			return // data that is not a decodable object (reported to the client as such)
		}
		if !json.Valid(e.norm) {
			t.Fatalf("%q: normalized to invalid JSON %q", raw, e.norm)
		}
		if !internal && topLevelInngest(e.ev.Data) {
			t.Fatalf("%q: data._inngest kept: %s", raw, e.norm)
		}
		if e.ev.ID == "" || ev.ID != "" && e.ev.ID != ev.ID {
			t.Fatalf("%q: id %q became %q", raw, ev.ID, e.ev.ID)
		}
		big := &App{opts: Options{MaxEventSize: len(e.norm)}}
		again, err := big.validate(e.norm, now.Add(time.Hour), internal)
		if err != nil {
			t.Fatalf("%q: normalized form %s is rejected: %v", raw, e.norm, err)
		}
		again.internal = e.internal
		if err := again.normalize(internal); err != nil || !bytes.Equal(again.norm, e.norm) {
			t.Fatalf("%q: normalizing %s again gave %s (%v)", raw, e.norm, again.norm, err)
		}
	})
}

func isObject(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

// topLevelInngest reports whether data (an object) has the key "_inngest" at its top level.
func topLevelInngest(data json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	_, ok := m["_inngest"]
	return ok
}
