package adapter_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/internal/testenv"
)

type readiness struct {
	Status int               `json:"status"`
	Checks map[string]string `json:"checks"`
}

func ready(t *testing.T, url string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(url + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r readiness
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("/ready body is not JSON: %s", b)
	}
	return resp.StatusCode, r
}

// /ready is 200 while Redis and Temporal answer and 503 naming the one that stopped;
// /health stays 200 (the process is alive).
func TestReadiness(t *testing.T) {
	t.Parallel()
	testenv.Services(t)
	rp := newRedisProxy(t)
	tp := newProxy(t, testenv.Server().Address())
	app := testenv.App(t, func(o *adapter.Options) {
		o.Redis = rp.client
		o.Temporal = nil
		o.TemporalAddress = tp.addr
	})
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	if code, r := ready(t, srv.URL); code != 200 || r.Status != 200 || r.Checks["redis"] != "ok" || r.Checks["temporal"] != "ok" {
		t.Fatalf("both up: HTTP %d %+v", code, r)
	}
	rp.stop()
	if code, r := ready(t, srv.URL); code != 503 || r.Status != 503 || r.Checks["redis"] == "ok" || r.Checks["temporal"] != "ok" {
		t.Fatalf("redis down: HTTP %d %+v", code, r)
	}
	tp.stop()
	if code, r := ready(t, srv.URL); code != 503 || r.Checks["redis"] == "ok" || r.Checks["temporal"] == "ok" {
		t.Fatalf("both down: HTTP %d %+v", code, r)
	}
	if code, _ := get(t, srv.URL+"/health", nil); code != 200 {
		t.Fatalf("/health: HTTP %d", code)
	}
}
