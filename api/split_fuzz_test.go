package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

// splitEvents agrees with encoding/json on any body: it accepts exactly the valid JSON
// objects, and arrays of at most max values, and returns their elements unchanged.
func FuzzSplitEvents(f *testing.F) {
	for _, body := range []string{
		``, `  `, `{"name":"a"}`, ` {"name":"a"} `, `[{"name":"a"},{"name":"b"}]`, `[]`, `[1,"x",null]`,
		`[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]`, `[{"name":"a"}`, `{"name":`, `42`, `"x"`, `null`,
		`[{"name":"a"}] x`, `[{"name":"a"}][]`, `{"name":"a"} {"name":"b"}`, `{"name":"a"}]`, `[{"name":"a"} {"name":"b"}]`,
		"[{\"name\":\"a\"}]\n\t ", "\xef\xbb\xbf{}", `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `[[[[[[]]]]]]`, `{"a":1e999}`,
	} {
		f.Add([]byte(body))
	}
	const max = 3
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := splitEvents(bytes.NewReader(body), max)
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		var want []json.RawMessage
		wantOK := false
		switch {
		case len(trimmed) == 0:
			wantOK = true
		case trimmed[0] == '{':
			wantOK = json.Valid(body)
			want = []json.RawMessage{bytes.Trim(body, " \t\r\n")}
		case trimmed[0] == '[':
			wantOK = json.Unmarshal(body, &want) == nil && len(want) <= max
		}
		if (err == nil) != wantOK {
			t.Fatalf("%q: err %v, encoding/json says valid=%v", body, err, wantOK)
		}
		if err != nil {
			return
		}
		if len(evs) != len(want) {
			t.Fatalf("%q: %d events, want %d", body, len(evs), len(want))
		}
		for i := range evs {
			if !bytes.Equal(evs[i], want[i]) {
				t.Fatalf("%q: event %d is %q, want %q", body, i, evs[i], want[i])
			}
		}
	})
}
