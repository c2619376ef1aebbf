package adapter_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// postJSON POSTs body to path and decodes {"data": ...} into out; it returns the status
// code and the body.
func postJSON(t *testing.T, srv *httptest.Server, path, body string, out any) (int, string) {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, &struct{ Data any }{out}); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode, string(b)
}

// A failed run is rerun after the "fix": in full (every step runs again), and from its
// failed step (the steps before it are not executed again, their results are reused, and
// the step reads the input the rerun gave it).
func TestRerun(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	var charges, ships atomic.Int32
	var broken atomic.Bool
	broken.Store(true)
	type result struct{ Charged, Shipped int }
	mustCreate(t, app, "ship-order", adapter.EventTrigger(app.AppID()+"/order", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			charged, err := step.Run(ctx, "charge", func(ctx context.Context) (int, error) {
				charges.Add(1)
				return 10, nil
			})
			if err != nil {
				return nil, err
			}
			if err := step.Sleep(ctx, "pause", 10*time.Millisecond); err != nil {
				return nil, err
			}
			shipped, err := step.Run(ctx, "ship", func(ctx context.Context) (int, error) {
				ships.Add(1)
				if broken.Load() {
					return 0, adapter.NonRetriable(errors.New("no stock"))
				}
				qty := 1
				if _, err := step.Input(ctx, &qty); err != nil {
					return 0, err
				}
				return qty, nil
			})
			if err != nil {
				return nil, err
			}
			return result{charged, shipped}, nil
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()

	orig := runsOf(t, app, send(t, app, map[string]any{"name": app.AppID() + "/order"})[0])[0].RunID
	if r := waitRun(t, app, orig); r.Status != api.StatusFailed || !strings.Contains(string(r.Output), "no stock") {
		t.Fatalf("original: %s %s", r.Status, r.Output)
	}
	broken.Store(false) // the fix is deployed

	var full api.Rerun
	if code, body := postJSON(t, srv, "/v2/runs/"+orig+"/rerun", "", &full); code != 200 || full.RerunOf != orig || len(full.Reused) != 0 {
		t.Fatalf("rerun: HTTP %d %s", code, body)
	}
	if r := waitRun(t, app, full.RunID); r.Status != api.StatusCompleted || string(r.Output) != `{"Charged":10,"Shipped":1}` {
		t.Fatalf("full rerun: %s %s", r.Status, r.Output)
	}
	if charges.Load() != 2 || ships.Load() != 2 {
		t.Fatalf("after a full rerun: %d charges, %d ships, want 2 and 2", charges.Load(), ships.Load())
	}

	var from api.Rerun
	code, body := postJSON(t, srv, "/v2/runs/"+orig+"/rerun", `{"from_step": {"step_id": "ship", "input": 3}}`, &from)
	if code != 200 || !slices.Equal(from.Reused, []string{"charge", "pause"}) {
		t.Fatalf("rerun from ship: HTTP %d %s", code, body)
	}
	if r := waitRun(t, app, from.RunID); r.Status != api.StatusCompleted || string(r.Output) != `{"Charged":10,"Shipped":3}` {
		t.Fatalf("rerun from a step: %s %s", r.Status, r.Output)
	}
	if charges.Load() != 2 || ships.Load() != 3 {
		t.Fatalf("after a rerun from ship: %d charges, %d ships, want 2 (charge reused) and 3", charges.Load(), ships.Load())
	}

	// Linked both ways: the rerun names the original; the original lists its reruns (once
	// visibility has them).
	var rerun api.RunV2
	if getJSON(t, srv, "/v2/runs/"+from.RunID, &rerun); rerun.RerunOf != orig {
		t.Fatalf("rerun's rerun_of = %q, want %s", rerun.RerunOf, orig)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var o api.RunV2
		getJSON(t, srv, "/v2/runs/"+orig, &o)
		if len(o.Reruns) == 2 && slices.Contains(o.Reruns, full.RunID) && slices.Contains(o.Reruns, from.RunID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("original's reruns = %v, want %s and %s", o.Reruns, full.RunID, from.RunID)
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, c := range []struct {
		path, body string
		code       int
		msg        string
	}{
		{"/v2/runs/" + orig + "/rerun", `{"from_step": {"step_id": "nope"}}`, 400, `has no step \"nope\" (its steps are charge, pause, ship)`},
		{"/v2/runs/" + orig + "/rerun", `{"from_step": {}}`, 400, "from_step.step_id is required"},
		{"/v2/runs/" + orig + "/rerun", `{"from": 1}`, 400, "Invalid request body"},
		{"/v2/runs/01M8C5A8AE54CATSG6QDR7G7T3/rerun", `{}`, 404, "not found"},
	} {
		if code, body := postJSON(t, srv, c.path, c.body, nil); code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("POST %s %s: HTTP %d %s, want %d with %q", c.path, c.body, code, body, c.code, c.msg)
		}
	}
}
