package adapter_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

// postEvent sends body to srv's event API and returns the HTTP status and the body's
// status and error.
func postEvent(t *testing.T, srv *httptest.Server, body string) (int, int, string) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/e/k", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body is not JSON: %s", b)
	}
	return resp.StatusCode, out.Status, out.Error
}

// Events Temporal would refuse (a name over its search-attribute size) are a 400 before
// anything starts, not a 500 the client retries forever. A name at the limit, made of the
// characters JSON escapes to six bytes, still starts its run.
func TestEventLimitsAreCheckedUpFront(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "all", adapter.EventTrigger("test/*", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	long := "test/" + strings.Repeat("x", 2043)
	atLimit := "test/" + strings.Repeat("<", adapter.MaxSentEventNameLength-5)
	cases := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"2 KiB name", `{"name":"` + long + `"}`, 400, "event name is 2048 bytes; at most 256 are allowed"},
		{"long name in a batch", `[{"name":"test/ok"},{"name":"` + long + `"}]`, 400, "event 1: event name is 2048 bytes"},
		{"control character", `{"name":"test/a\u0000b"}`, 400, "event name must not contain control characters"},
		{"long id", `{"name":"test/a","id":"` + strings.Repeat("i", 513) + `"}`, 400, "event id is 513 bytes; at most 512 are allowed"},
		{"name at the limit", `{"name":"` + atLimit + `"}`, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, status, msg := postEvent(t, srv, c.body)
			if code != c.status || status != c.status || !strings.Contains(msg, c.msg) {
				t.Fatalf("HTTP %d status %d %q, want %d with %q", code, status, msg, c.status, c.msg)
			}
		})
	}
}

// A field of the wrong type is named in the user's terms, not in Go's.
func TestEventTypeErrorsInUsersTerms(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	cases := []struct{ body, msg string }{
		{`{"name":42}`, "event name must be a string, not a number"},
		{`{"name":["a"]}`, "event name must be a string, not an array"},
		{`{"name":"a","id":7}`, "event id must be a string, not a number"},
		{`{"name":"a","v":true}`, "event v must be a string, not a boolean"},
		{`{"name":"a","ts":"2026-01-01"}`, "event ts must be a number (unix milliseconds), not a string"},
		{`{"name":"a","ts":1767225600000.5}`, "event ts 1767225600000.5 is not a whole number of unix milliseconds"},
		{`{"name":"a","data":[1]}`, "event data must be a JSON object, not an array"},
		{`{"name":"a","user":"u"}`, "event user must be a JSON object, not a string"},
		{`[{"name":"a"},7]`, "event 1: event must be a JSON object, not a number"},
	}
	for _, c := range cases {
		code, status, msg := postEvent(t, srv, c.body)
		if code != 400 || status != 400 || !strings.Contains(msg, c.msg) || strings.Contains(msg, "Go struct") {
			t.Errorf("%s: HTTP %d status %d %q, want 400 with %q", c.body, code, status, msg, c.msg)
		}
	}
}
