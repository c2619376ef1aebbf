package tempesttest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/adapter/tempesttest"
)

func defineFn(t *testing.T, opts adapter.FunctionOpts, trigger adapter.Trigger, fn adapter.SDKFunction[map[string]any]) *adapter.Functions {
	t.Helper()
	fns := adapter.NewFunctions("kit")
	if _, err := adapter.CreateFunction(fns, opts, trigger, fn); err != nil {
		t.Fatal(err)
	}
	return fns
}

var goEvent = []adapter.Event{{Name: "kit/go", Data: map[string]any{"user": "u-1", "vip": true}}}

func TestCasesThatCannotRun(t *testing.T) {
	fns := defineFn(t, adapter.FunctionOpts{ID: "fn"}, adapter.EventTrigger("kit/go", adapter.Ptr("event.data.vip == true")),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	for _, c := range []struct {
		id   string
		c    tempesttest.Case
		want string
	}{
		{"nope", tempesttest.Case{Events: goEvent}, `no function "nope"`},
		{"fn", tempesttest.Case{}, "Case.Events is empty"},
		{"fn", tempesttest.Case{Events: []adapter.Event{{Name: "kit/other"}}}, `event 0 ("kit/other") does not trigger kit-fn`},
		{"fn", tempesttest.Case{Events: []adapter.Event{{Name: "kit/go", Data: map[string]any{"vip": false}}}}, "does not trigger"},
	} {
		if _, err := tempesttest.Run(fns, c.id, c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%q) error %v, want it to say %q", c.id, err, c.want)
		}
	}
	// The fully qualified id works too.
	if _, err := tempesttest.Run(fns, "kit-fn", tempesttest.Case{Events: goEvent}); err != nil {
		t.Errorf("Run by fully qualified id: %v", err)
	}
}

// A step that fails every attempt fails the run with a *adapter.StepError once the
// function's retries are spent, after the real backoff schedule in virtual time.
func TestRunFailsWithTheStepError(t *testing.T) {
	fns := defineFn(t, adapter.FunctionOpts{ID: "fn", Retries: adapter.Ptr(2)}, adapter.EventTrigger("kit/go", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "boom", func(ctx context.Context) (int, error) { return 0, errors.New("the body ran") })
		})
	res, err := tempesttest.Run(fns, "fn", tempesttest.Case{Events: goEvent, Steps: map[string][]tempesttest.Answer{
		"boom": {tempesttest.Fail(errors.New("first")), tempesttest.Fail(errors.New("later"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var se *adapter.StepError
	if !errors.As(res.Err, &se) || se.StepID != "boom" || se.Message != "later" {
		t.Fatalf("run error %v, want the StepError of step boom with the last answer", res.Err)
	}
	a := res.Step("boom").Attempts
	if len(a) != 3 || a[0].Err != "first" || a[2].Err != "later" || !a[0].Answered {
		t.Fatalf("attempts %+v, want 3 answered: first, later, later", a)
	}
	// Inngest's table: 15 s then 30 s, plus up to 30 s of jitter each.
	if d := a[1].At.Sub(a[0].At); d < 15*time.Second || d > 45*time.Second {
		t.Errorf("second attempt %s after the first, want 15–45 s", d)
	}
	if string(res.Output) != "null" {
		t.Errorf("output %s, want null", res.Output)
	}
}

// A wait takes a fed event only when its If condition holds; an invoke nobody answers
// fails like an unknown function; an answered invoke that fails is a StepError.
func TestWaitsAndInvokes(t *testing.T) {
	fns := defineFn(t, adapter.FunctionOpts{ID: "fn"}, adapter.EventTrigger("kit/go", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			_, werr := step.WaitForEvent[adapter.Event](ctx, "big-order", step.WaitForEventOpts{
				Event: "kit/order", If: "async.data.total > 100 && async.data.user == event.data.user", Timeout: time.Hour})
			_, unknown := step.Invoke[any](ctx, "unknown", step.InvokeOpts{FunctionID: "ghost"})
			_, failed := step.Invoke[any](ctx, "fails", step.InvokeOpts{FunctionID: "other-app-fn"})
			var got []string
			for _, err := range []error{werr, unknown, failed} {
				got = append(got, errString(err))
			}
			return got, nil
		})
	run := func(total int) []string {
		res, err := tempesttest.Run(fns, "fn", tempesttest.Case{Events: goEvent,
			Waits:   map[string]adapter.Event{"big-order": {Name: "kit/order", Data: map[string]any{"user": "u-1", "total": total}}},
			Invokes: map[string]tempesttest.Answer{"other-app-fn": tempesttest.Fail(errors.New("no stock"))},
		})
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		var out []string
		if err := res.Decode(&out); err != nil {
			t.Fatal(err)
		}
		if len(res.Invoked) != 1 || res.Invoked[0].StepID != "fails" {
			t.Errorf("invocations %+v, want the answered one (step fails)", res.Invoked)
		}
		return out
	}
	if got := run(500); got[0] != "" || !strings.Contains(got[1], `"ghost" not found`) || !strings.Contains(got[2], "no stock") {
		t.Errorf("with a matching event: %q", got)
	}
	if got := run(50); got[0] != step.ErrEventNotReceived.Error() {
		t.Errorf("with an event failing the If: wait gave %q, want %q", got[0], step.ErrEventNotReceived)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
