package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// The client commands against a running server that requires its keys: what they print
// and their exit codes.
func TestClientCommands(t *testing.T) {
	app := testenv.App(t, func(o *adapter.Options) {
		o.Dev, o.EventKeys, o.SigningKey = false, []string{"ek"}, "sk"
	})
	if _, err := adapter.CreateFunction(app, adapter.FunctionOpts{ID: "greet", Retries: adapter.Ptr(0)}, adapter.EventTrigger("cli/hello", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "hi", func(ctx context.Context) (string, error) {
				if in.Event.Data["name"] == "bad" {
					return "", adapter.NonRetriable(errors.New("bad name"))
				}
				return fmt.Sprint("hello ", in.Event.Data["name"]), nil
			})
		}); err != nil {
		t.Fatal(err)
	}
	testenv.StartWorker(t, app)
	srv := httptest.NewServer(app.Handler())
	defer srv.Close()
	ctx := context.Background()
	t.Setenv("TEMPEST_URL", srv.URL)
	t.Setenv("INNGEST_SIGNING_KEY", "sk")
	t.Setenv("INNGEST_EVENT_KEY", "ek")

	run := func(stdin string, args ...string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		var err error
		switch args[0] {
		case "send":
			err = sendCmd(ctx, args[1:], strings.NewReader(stdin), &out)
		case "runs":
			err = runsCmd(ctx, args[1:], &out)
		case "replay":
			err = replayCmd(ctx, args[1:], &out, stdin == "tty")
		}
		if err != nil {
			out.WriteString("error: " + err.Error())
		}
		return out.String(), exitCode(err)
	}
	expect := func(code int, contains string, stdin string, args ...string) string {
		t.Helper()
		out, got := run(stdin, args...)
		if got != code || !strings.Contains(out, contains) {
			t.Fatalf("tempest %s: exit %d, output %q; want exit %d with %q", strings.Join(args, " "), got, out, code, contains)
		}
		return out
	}

	from := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	good := strings.TrimSpace(expect(exitOK, "", "", "send", "cli/hello", "--data", `{"name":"Ada"}`))
	bad := strings.TrimSpace(expect(exitOK, "", `[{"name":"cli/hello","data":{"name":"bad"}}]`, "send"))
	expect(exitFailed, "HTTP 401", "", "send", "cli/hello", "--event-key", "wrong")
	expect(exitUsage, "is not a JSON object", "", "send", "cli/hello", "--data", "[1]")
	expect(exitUsage, "stdin is not JSON", "not json", "send")

	runOf := func(event string) string {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			ev, err := app.Event(ctx, event)
			if err == nil && ev.DispatchedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s not dispatched: %v", event, err)
			}
		}
		runs, err := app.EventRuns(ctx, event)
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs of %s: %v %v", event, runs, err)
		}
		return runs[0].RunID
	}
	goodRun, badRun := runOf(good), runOf(bad)
	for _, id := range []string{goodRun, badRun} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, err := app.Run(ctx, id)
			if err == nil && r.EndedAt != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s did not end: %+v %v", id, r, err)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := run("", "runs", "list", "--status", "FAILED", "--function", app.AppID()+"-greet", "--all")
		if code == exitOK && strings.Contains(out, badRun) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs list: exit %d %s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := expect(exitOK, "", "", "runs", "list", "--function", app.AppID()+"-greet", "--json")
	var listed []api.RunV2
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) < 1 {
		t.Fatalf("runs list --json: %v %s", err, out)
	}
	expect(exitFailed, "HTTP 401", "", "runs", "list", "--signing-key", "wrong")
	expect(exitOK, `output    "hello Ada"`, "", "runs", "get", goodRun)
	expect(exitOK, "hi", "", "runs", "trace", badRun)
	expect(exitNotFound, "HTTP 404", "", "runs", "get", "01M8C5A8AE54CATSG6QDR7G7T3")
	expect(exitUsage, "is not a ULID", "", "runs", "get", "nope")
	expect(exitUsage, "give one run id", "", "runs", "get")
	expect(exitUsage, "HTTP 409", "", "runs", "cancel", goodRun)
	expect(exitUsage, "has no step", "", "runs", "rerun", badRun, "--from-step", "nope")

	// A replay followed to its end: a plain line per change when not a terminal.
	until := time.Now().UTC().Format(time.RFC3339Nano)
	out = expect(exitOK, "COMPLETED: 1/1 started", "", "replay", "start", "--app", app.AppID(), "--function", "greet",
		"--from", from, "--until", until, "--status", "FAILED", "--rate", "50", "--wait")
	id := strings.Fields(out[strings.LastIndex(out, "replay "):])[1]
	expect(exitOK, "[##############################] replay "+id+" COMPLETED", "tty", "replay", "status", id, "--wait")
	expect(exitOK, "COMPLETED", "", "replay", "cancel", id)
	expect(exitUsage, "from and until are required", "", "replay", "start", "--app", app.AppID(), "--function", "greet")
	expect(exitNotFound, "HTTP 404", "", "replay", "status", "01M8C5A8AE54CATSG6QDR7G7T3")
	if rerun := strings.TrimSpace(expect(exitOK, "", "", "runs", "rerun", badRun)); len(rerun) != 26 {
		t.Fatalf("rerun printed %q", rerun)
	}
}
