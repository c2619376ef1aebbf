package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/oklog/ulid/v2"
)

// ulidParam accepts exactly the ids that are ULIDs in canonical form (any letter case), and
// answers 400 for the rest.
func FuzzULIDParam(f *testing.F) {
	for _, id := range []string{
		"01M8C5A8AE54CATSG6QDR7G7T3", "01m8c5a8ae54catsg6qdr7g7t3", "81M8C5A8AE54CATSG6QDR7G7T3", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
		"01M8C5A8AE54CATSG6QDR7G7T", "01M8C5A8AE54CATSG6QDR7G7T33", "01M8C5A8AE54CATSG6QDR7G7TI", "01M8C5A8AE54CATSG6QDR7G7TU",
		"", "../etc/passwd", "01M8C5A8AE54CATSG6QDR7G7Tſ", "01M8C5A8AE54CATSG6QDR7G7Tı", "01M8C5A8AE54CATSG6QDR7G7T\n",
	} {
		f.Add(id)
	}
	gin.SetMode(gin.ReleaseMode)
	f.Fuzz(func(t *testing.T, raw string) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Params = gin.Params{{Key: "id", Value: raw}}
		id, ok := ulidParam(c)
		upper := strings.ToUpper(raw)
		parsed, perr := ulid.ParseStrict(upper)
		canonical := perr == nil && parsed.String() == upper
		if ok {
			if p, err := ulid.ParseStrict(id); err != nil || p.String() != id {
				t.Fatalf("%q: accepted as %q, which is not a canonical ULID (%v)", raw, id, err)
			}
			return
		}
		if canonical {
			t.Fatalf("%q: rejected a ULID", raw)
		}
		if w.Code != 400 || !strings.Contains(w.Body.String(), "is not a ULID") {
			t.Fatalf("%q: rejected with %d %s", raw, w.Code, w.Body)
		}
	})
}

// cancelOnly is the Backend of the cancellations fuzz target: it records the requests that
// got through validation (anything else it is asked is a failure of the target: the
// embedded nil interface panics).
type cancelOnly struct {
	Backend
	got *CancellationRequest
}

func (b *cancelOnly) CancelRuns(_ context.Context, req CancellationRequest) (*Cancellation, error) {
	b.got = &req
	return nil, ErrNotFound
}

// A bulk-cancellation body is either refused with a 400, or reaches the backend holding
// every documented precondition; it is never a 5xx.
func FuzzCancellationBody(f *testing.F) {
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for _, body := range []string{
		`{"app_id":"shop","function_id":"remind","started_before":"` + past + `"}`,
		`{"app_id":"shop","function_id":"remind","started_after":"2020-01-01T00:00:00Z","started_before":"` + past + `","if":"event.data.user == 'u1'"}`,
		`{"app_id":"shop","function_id":"remind","started_after":"` + past + `","started_before":"` + past + `"}`,
		`{"app_id":"shop","function_id":"remind","started_before":"2999-01-01T00:00:00Z"}`,
		`{}`, `[]`, `null`, ``, `{"app_id":1}`, `{"started_before":"yesterday"}`, `{"app_id":"a"}{"b":1}`,
		`{"app_id":"shop","function_id":"remind","started_before":"0001-01-01T00:00:00Z","started_after":"9999-12-31T23:59:59Z"}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b := &cancelOnly{}
		h := New(b, Config{Dev: true})
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8288/v1/cancellations", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:50000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var out struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &out)
		if b.got == nil {
			if w.Code != 400 || out.Error == "" {
				t.Fatalf("%q: refused with %d %s, want 400 with an error", body, w.Code, w.Body)
			}
			return
		}
		r := b.got
		switch {
		case w.Code != 404:
			t.Fatalf("%q: the backend's not-found became %d", body, w.Code)
		case r.AppID == "" || r.FunctionID == "" || r.StartedBefore == nil:
			t.Fatalf("%q: reached the backend without app_id, function_id or started_before: %+v", body, r)
		case r.StartedBefore.After(time.Now().Add(5 * time.Second)):
			t.Fatalf("%q: started_before %s is in the future", body, r.StartedBefore)
		case r.StartedAfter != nil && !r.StartedAfter.Before(*r.StartedBefore):
			t.Fatalf("%q: started_after %s is not before started_before %s", body, r.StartedAfter, r.StartedBefore)
		}
	})
}
