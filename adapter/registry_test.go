package adapter_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

// One environment, three processes: two apps with workers and a gateway with no functions
// of its own (each with its own Redis connection). An event sent to any of them fans out to
// every matching function of both apps; a redeploy that drops a function stops its events
// within a second; a function whose workers are down keeps receiving runs, which complete
// once a worker returns; step.Invoke reaches a function of the other app.
func TestRegistryRoutesAcrossApps(t *testing.T) {
	t.Parallel()
	env := fmt.Sprintf("env-%d", time.Now().UnixNano())
	inEnv := func(id string) func(*adapter.Options) {
		return func(o *adapter.Options) {
			o.AppID, o.Environment, o.Redis, o.RedisURL = id+"-"+env[4:], env, nil, testenv.RedisURL()
		}
	}
	shop, mail, gateway := testenv.App(t, inEnv("shop")), testenv.App(t, inEnv("mail")), testenv.App(t, inEnv("gw"))
	ran := make(chan string, 20)
	record := func(name string) adapter.SDKFunction[map[string]any] {
		return func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Run(ctx, "record", func(context.Context) (string, error) { ran <- name; return name, nil })
		}
	}
	mustCreate(t, shop, "charge", adapter.EventTrigger("order/created", nil), record("charge"))
	mustCreate(t, mail, "receipt", adapter.EventTrigger("order/created", nil), record("receipt"))
	mustCreate(t, mail, "audit", adapter.EventTrigger("order/*", nil), record("audit"))
	mustCreate(t, mail, "ask-shop", adapter.EventTrigger("mail/ask", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
			return step.Invoke[string](ctx, "charge-it", step.InvokeOpts{FunctionID: shop.AppID() + "-charge", Data: map[string]any{}})
		})
	stopShop := testenv.StartWorker(t, shop)
	testenv.StartWorker(t, mail)
	all := []string{mail.AppID() + "-ask-shop", mail.AppID() + "-audit", mail.AppID() + "-receipt", shop.AppID() + "-charge"}
	for _, app := range []*adapter.App{gateway, shop, mail} {
		waitRouted(t, app, all) // a publish reaches every process within a second
	}

	functionsOf := func(app *adapter.App, ids []string) []string {
		var fns []string
		for _, r := range runsOf(t, app, ids[0]) {
			fns = append(fns, r.FunctionID)
			if r := waitRun(t, app, r.RunID); r.Status != api.StatusCompleted {
				t.Fatalf("run %s of %s: %s %s", r.RunID, r.FunctionID, r.Status, r.Output)
			}
		}
		slices.Sort(fns)
		return fns
	}
	want := []string{mail.AppID() + "-audit", mail.AppID() + "-receipt", shop.AppID() + "-charge"}
	for _, via := range []*adapter.App{gateway, shop, mail} {
		ids := send(t, via, map[string]any{"name": "order/created", "data": map[string]any{}})
		if got := functionsOf(via, ids); !slices.Equal(got, want) {
			t.Fatalf("an event sent to %s started %v, want %v", via.AppID(), got, want)
		}
	}
	for range 9 {
		<-ran
	}

	// Cross-app invoke.
	ids := send(t, gateway, map[string]any{"name": "mail/ask", "data": map[string]any{}})
	if r := waitRun(t, gateway, runsOf(t, gateway, ids[0])[0].RunID); r.Status != api.StatusCompleted || string(r.Output) != `"charge"` {
		t.Fatalf("invoke across apps: %s %s", r.Status, r.Output)
	}
	<-ran

	// The shop's workers are down: its runs are started and wait for a worker.
	stopShop()
	ids = send(t, gateway, map[string]any{"name": "order/created", "data": map[string]any{}})
	var charge string
	for _, r := range runsOf(t, gateway, ids[0]) {
		if r.FunctionID == shop.AppID()+"-charge" {
			charge = r.RunID
		}
	}
	if charge == "" {
		t.Fatalf("with its workers down, the shop's function got no run")
	}
	<-ran // receipt
	<-ran // audit
	testenv.StartWorker(t, shop)
	if r := waitRun(t, gateway, charge); r.Status != api.StatusCompleted {
		t.Fatalf("the waiting run after the worker returned: %s", r.Status)
	}
	<-ran

	// A redeploy of mail without "audit": within a second no process routes to it.
	redeployed := testenv.App(t, func(o *adapter.Options) { inEnv("mail")(o); o.AppID = mail.AppID() })
	mustCreate(t, redeployed, "receipt", adapter.EventTrigger("order/created", nil), record("receipt"))
	testenv.StartWorker(t, redeployed)
	waitRouted(t, gateway, []string{mail.AppID() + "-receipt", shop.AppID() + "-charge"})
	ids = send(t, gateway, map[string]any{"name": "order/created", "data": map[string]any{}})
	if got := functionsOf(gateway, ids); !slices.Equal(got, []string{mail.AppID() + "-receipt", shop.AppID() + "-charge"}) {
		t.Fatalf("after the redeploy, an event started %v", got)
	}
}

// waitRouted waits up to a second until app routes to exactly want.
func waitRouted(t *testing.T, app *adapter.App, want []string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		got := app.RoutedForTest()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s routes to %v a second after the publish, want %v", app.AppID(), got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
