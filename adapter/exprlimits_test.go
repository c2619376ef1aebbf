package adapter_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// numbers is the CEL or JSON list 0..n-1.
func numbers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint(i)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Every user expression is bounded; configuration with an expensive or overlong one fails.
func TestExpressionLimitsAtRegistration(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	nested := numbers(100) + `.exists(x, ` + numbers(100) + `.exists(y, ` + numbers(100) + `.exists(z, x + y + z < 0)))`
	long := `event.data.s == "` + strings.Repeat("x", 5000) + `"`
	rejects(t, app, adapter.FunctionOpts{ID: "t"}, adapter.EventTrigger("a/b", &nested), "over the limit of 20000")
	rejects(t, app, adapter.FunctionOpts{ID: "t"}, adapter.EventTrigger("a/b", &long), "over the limit of 4096")
	rejects(t, app, adapter.FunctionOpts{ID: "t", Throttle: &adapter.Throttle{Limit: 1, Period: time.Minute, Key: &nested}},
		adapter.EventTrigger("a/b", nil), "over the limit of 20000")
	rejects(t, app, adapter.FunctionOpts{ID: "t", Cancel: []adapter.Cancel{{Event: "a/c", If: &nested}}},
		adapter.EventTrigger("a/b", nil), "over the limit of 20000")
}

// A bulk cancellation whose `if` is too expensive is a 400, whether the cost shows when
// compiling or only on a run's event, and in the second case it has cancelled nothing.
func TestBulkCancellationIfCostLimit(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil)
	mustCreate(t, app, "hold", adapter.EventTrigger("test/hold", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return nil, step.Sleep(ctx, "wait", time.Hour)
		})
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	items := make([]int, 2000)
	for i := range items {
		items[i] = i
	}
	ids := send(t, app, map[string]any{"name": "test/hold", "data": map[string]any{"items": items}})
	runID := runsOf(t, app, ids[0])[0].RunID
	// Visibility lists a run a moment after it starts; each CountWorkflow is a round trip.
	query := fmt.Sprintf("TempestFunctionID = '%s-hold' AND ExecutionStatus = 'Running'", app.AppID())
	for deadline := time.Now().Add(20 * time.Second); ; {
		n, err := app.Temporal().CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && n.GetCount() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("visibility shows %v runs: %v", n.GetCount(), err)
		}
	}
	post := func(cond string) (int, string) {
		body := fmt.Sprintf(`{"app_id":%q,"function_id":"hold","started_before":%q,"if":%q}`,
			app.AppID(), time.Now().Add(time.Second).UTC().Format(time.RFC3339), cond)
		resp, err := http.Post(srv.URL+"/v1/cancellations", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for cond, want := range map[string]string{
		// Four million comprehension steps on this event.
		`event.data.items.exists(x, event.data.items.exists(y, x == y + 0.5))`:                                     "exceeded its cost limit of 20000 on this event",
		numbers(100) + `.exists(x, ` + numbers(100) + `.exists(y, ` + numbers(100) + `.exists(z, x + y + z < 0)))`: "over the limit of 20000",
		`event.data.s == "` + strings.Repeat("x", 5000) + `"`:                                                      "over the limit of 4096",
	} {
		if code, got := post(cond); code != 400 || !strings.Contains(got, want) {
			t.Errorf("%.50s: HTTP %d %.300s, want 400 %q", cond, code, got, want)
		}
	}
	if r, err := app.Run(context.Background(), runID); err != nil || r.Status != api.StatusRunning {
		t.Fatalf("after the rejected requests the run is %v (%v), want Running", r, err)
	}
	if code, got := post(`event.data.items.exists(x, x == 1999)`); code != 200 || !strings.Contains(got, `"cancelled":1`) {
		t.Fatalf("a scan of the event's list: HTTP %d %s", code, got)
	}
}
