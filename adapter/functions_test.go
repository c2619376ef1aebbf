package adapter_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// Definitions made without any connection run once handed to an app.
func TestFunctionsDefinedApartRun(t *testing.T) {
	t.Parallel()
	app := testenv.App(t, nil) // only for its id
	fns := adapter.NewFunctions(app.AppID() + "-apart")
	if _, err := adapter.CreateFunction(fns, adapter.FunctionOpts{ID: "greet"}, adapter.EventTrigger("apart/hello", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "hi", func(context.Context) (string, error) { return "hi", nil })
		}); err != nil {
		t.Fatal(err)
	}
	if _, err := adapter.CreateFunction(fns, adapter.FunctionOpts{ID: "greet"}, adapter.EventTrigger("apart/hello", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Fatalf("a duplicate id: %v", err)
	}
	if _, err := testenvApp(t, "wrong-app", fns); err == nil || !strings.Contains(err.Error(), "are defined for app") {
		t.Fatalf("Functions of another app: %v", err)
	}
	runner, err := testenvApp(t, app.AppID()+"-apart", fns)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, runner)
	ids := send(t, runner, map[string]any{"name": "apart/hello", "data": map[string]any{}})
	if r := waitRun(t, runner, runsOf(t, runner, ids[0])[0].RunID); r.Status != api.StatusCompleted || string(r.Output) != `"hi"` {
		t.Fatalf("%s %s", r.Status, r.Output)
	}
}

// testenvApp is an app on the test services with the given id and definitions.
func testenvApp(t *testing.T, id string, fns *adapter.Functions) (app *adapter.App, err error) {
	t.Helper()
	c, r := testenv.Services(t)
	app, err = adapter.New(context.Background(), adapter.Options{AppID: id, Environment: id, Temporal: c, Redis: r, Dev: true, Functions: fns,
		DatabaseURL: "sqlite:" + filepath.Join(t.TempDir(), "events.db")})
	if err == nil {
		t.Cleanup(app.Close)
		t.Cleanup(func() { testenv.DropEnvironment(id) })
	}
	return app, err
}
