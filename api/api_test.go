package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSplitEvents(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		n    int
		err  string
	}{
		{``, 0, ""},
		{`  {"name":"a"} `, 1, ""},
		{`[{"name":"a"},{"name":"b"}]`, 2, ""},
		{`[]`, 0, ""},
		{`[{"name":"a"},{"name":"b"},{"name":"c"}]`, 0, "Cannot have more than 2 events"},
		{`[{"name":"a"}`, 0, "Invalid JSON"},
		{`{"name":`, 0, "Invalid JSON"},
		{`42`, 0, "must contain an event object or an array"},
		{`[{"name":"a"}] x`, 0, "unexpected data after the event array at byte 15"},
		{`[{"name":"a"}][]`, 0, "unexpected data after the event array"},
		{`{"name":"a"} {"name":"b"}`, 0, "unexpected data after the event object at byte 13"},
		{`{"name":"a"}]`, 0, "unexpected data after the event object"},
		{`[{"name":"a"} {"name":"b"}]`, 0, "Invalid JSON in request body"},
		{"[{\"name\":\"a\"}]\n\t ", 1, ""},
	}
	for _, c := range cases {
		evs, err := splitEvents(strings.NewReader(c.body), 2)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || len(evs) != c.n {
			t.Errorf("%q: %d events, err %v; want %d", c.body, len(evs), err, c.n)
		}
		for _, e := range evs {
			if !json.Valid(e) {
				t.Errorf("%q: invalid event %s", c.body, e)
			}
		}
	}
}

// The REST API accepts the signing key itself or the hashed form the Inngest SDKs send.
func ExampleSigningKeyMatches() {
	key := "signkey-prod-12345678"
	fmt.Println(SigningKeyMatches(key, "signkey-prod-12345678"))
	fmt.Println(SigningKeyMatches(key, "signkey-prod-b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"))
	fmt.Println(SigningKeyMatches(key, "signkey-prod-87654321"))
	// Output:
	// true
	// true
	// false
}
