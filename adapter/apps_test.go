package adapter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/registry"
	"github.com/tempestrun/tempest/internal/testenv"
)

// The REST API for apps and functions, served by a gateway of an environment with two apps:
// shop (a Go app whose worker runs) and mail (published, no worker). Lists, one app, one
// function by either id, 404s, the workers Temporal saw, and auth outside dev.
func TestAppsREST(t *testing.T) {
	t.Parallel()
	env := fmt.Sprintf("env-%d", time.Now().UnixNano())
	inEnv := func(id string) func(*adapter.Options) {
		return func(o *adapter.Options) { o.AppID, o.Environment = id+"-"+env[4:], env }
	}
	shop := testenv.App(t, inEnv("shop"))
	_, err := adapter.CreateFunction(shop, adapter.FunctionOpts{
		ID: "charge", Name: "Charge the card", Retries: adapter.Ptr(2),
		Throttle:  &adapter.Throttle{Limit: 10, Period: time.Minute},
		Cancel:    []adapter.Cancel{{Event: "order/cancelled", Match: "data.order"}},
		Timeouts:  &adapter.Timeouts{Finish: adapter.Ptr(time.Hour)},
		Singleton: &adapter.Singleton{Mode: "skip"},
	}, adapter.EventTrigger("order/created", adapter.Ptr(`event.data.total > 0`)),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return "charged", nil })
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, shop, "refund", adapter.EventTrigger("order/refunded", nil),
		func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) { return nil, nil })
	testenv.StartWorker(t, shop) // publishes shop

	_, rdb := testenv.Services(t)
	mailID := "mail-" + env[4:]
	if err := registry.Publish(context.Background(), rdb, env, registry.App{
		ID: mailID, TaskQueue: "tempest-" + mailID, SyncedAt: time.Now().UTC(),
		Functions: []registry.Function{{ID: mailID + "-receipt", Name: "receipt", Triggers: []registry.Trigger{{Event: "order/created"}}}},
	}); err != nil {
		t.Fatal(err)
	}

	// Created after both publishes, the gateway routes to them at once (New loads the
	// registry). Its run of charge reaches shop's worker through Temporal's matching (no
	// eager start: the worker is not in the gateway), so the worker has polled its queue.
	gateway := testenv.App(t, inEnv("gw"))
	ids := send(t, gateway, map[string]any{"name": "order/created", "data": map[string]any{"total": 5}})
	for _, r := range runsOf(t, gateway, ids[0]) {
		if r.FunctionID == shop.AppID()+"-charge" {
			waitRun(t, gateway, r.RunID)
		}
	}
	srv := httptest.NewServer(gateway.Handler())
	defer srv.Close()

	var apps struct{ Data []api.AppSummary }
	mustGet(t, srv.URL+"/v2/apps", nil, 200, &apps)
	if len(apps.Data) != 2 || apps.Data[0].ID != mailID || apps.Data[1].ID != shop.AppID() {
		t.Fatalf("GET /v2/apps: %+v", apps.Data)
	}
	if s := apps.Data[1]; s.TaskQueue != "tempest-"+shop.AppID() || s.FunctionCount != 2 || s.Version == "" ||
		time.Since(s.SyncedAt) > time.Minute {
		t.Fatalf("shop in GET /v2/apps: %+v", s)
	}

	var app struct{ Data api.AppDetail }
	mustGet(t, srv.URL+"/v2/apps/"+shop.AppID(), nil, 200, &app)
	if app.Data.ID != shop.AppID() || len(app.Data.Workers) == 0 || app.Data.Workers[0].Identity == "" ||
		time.Since(app.Data.Workers[0].LastAccessTime) > time.Minute {
		t.Fatalf("GET /v2/apps/shop: %+v", app.Data)
	}
	var mail struct{ Data map[string]json.RawMessage }
	mustGet(t, srv.URL+"/v2/apps/"+mailID, nil, 200, &mail)
	if string(mail.Data["workers"]) != "[]" || string(mail.Data["function_count"]) != "1" {
		t.Fatalf("GET /v2/apps/mail (no worker ever polled): %s %s", mail.Data["workers"], mail.Data["function_count"])
	}

	var fns struct{ Data []api.FunctionInfo }
	mustGet(t, srv.URL+"/v2/apps/"+shop.AppID()+"/functions", nil, 200, &fns)
	if len(fns.Data) != 2 || fns.Data[0].FunctionID != "charge" || fns.Data[1].ID != shop.AppID()+"-refund" {
		t.Fatalf("GET /v2/apps/shop/functions: %+v", fns.Data)
	}

	for _, fn := range []string{"charge", shop.AppID() + "-charge"} {
		var one struct{ Data api.FunctionDetail }
		mustGet(t, srv.URL+"/v2/apps/"+shop.AppID()+"/functions/"+fn, nil, 200, &one)
		var cfg registry.Function
		if err := json.Unmarshal(one.Data.Config, &cfg); err != nil {
			t.Fatal(err)
		}
		d := one.Data
		if d.ID != shop.AppID()+"-charge" || d.Name != "Charge the card" || d.AppID != shop.AppID() || d.Version == "" ||
			d.Version != cfg.Version || !d.SyncedAt.Equal(apps.Data[1].SyncedAt) || len(d.Workers) == 0 {
			t.Fatalf("GET .../functions/%s: %+v", fn, d)
		}
		if cfg.Retries != 2 || len(cfg.Triggers) != 1 || cfg.Triggers[0].Event != "order/created" ||
			*cfg.Triggers[0].Expression != "event.data.total > 0" || cfg.Throttle == nil || cfg.Throttle.Period != "1m0s" ||
			len(cfg.Cancel) != 1 || cfg.Cancel[0].Match != "data.order" || cfg.Timeouts == nil || cfg.Timeouts.Finish != "1h0m0s" ||
			cfg.Singleton == nil || cfg.Singleton.Mode != "skip" {
			t.Fatalf("configuration of charge: %s", d.Config)
		}
	}

	// v1 in Inngest's shape: a bare array.
	var v1 []map[string]json.RawMessage
	mustGet(t, srv.URL+"/v1/apps/"+mailID+"/functions", nil, 200, &v1)
	if len(v1) != 1 || string(v1[0]["id"]) != `"`+mailID+`-receipt"` || string(v1[0]["app_id"]) != `"`+mailID+`"` ||
		!strings.Contains(string(v1[0]["config"]), `"triggers":[{"event":"order/created"}]`) {
		t.Fatalf("GET /v1/apps/mail/functions: %v", v1)
	}

	for path, msg := range map[string]string{
		"/v1/apps/nope/functions":                       "App not found: nope",
		"/v2/apps/nope":                                 "App not found: nope",
		"/v2/apps/nope/functions":                       "App not found: nope",
		"/v2/apps/nope/functions/charge":                "App not found: nope",
		"/v2/apps/" + shop.AppID() + "/functions/nope":  "Function not found: nope in app " + shop.AppID(),
		"/v2/apps/" + mailID + "/functions/" + "charge": "Function not found: charge in app " + mailID,
	} {
		var e struct {
			Error  string
			Status int
			Data   any
		}
		mustGet(t, srv.URL+path, nil, 404, &e)
		if e.Error != msg || e.Status != 404 || e.Data != nil {
			t.Fatalf("GET %s: %+v, want %q", path, e, msg)
		}
	}

	// Outside dev, the same auth as /v1: the signing key as a bearer token.
	const key = "0123456789abcdef"
	secure := testenv.App(t, func(o *adapter.Options) {
		inEnv("secure")(o)
		o.Dev, o.SigningKey, o.EventKeys = false, key, []string{"k"}
	})
	ssrv := httptest.NewServer(secure.Handler())
	defer ssrv.Close()
	bearer := http.Header{"Authorization": {"Bearer " + key}}
	for _, path := range []string{"/v1/apps/" + mailID + "/functions", "/v2/apps", "/v2/apps/" + mailID,
		"/v2/apps/" + mailID + "/functions", "/v2/apps/" + mailID + "/functions/receipt"} {
		var e struct{ Status int }
		mustGet(t, ssrv.URL+path, nil, 401, &e)
		if e.Status != 401 {
			t.Fatalf("GET %s without a key: %+v", path, e)
		}
		var ok any
		mustGet(t, ssrv.URL+path, bearer, 200, &ok)
	}

	// A retired app is removed: gone from the list and from every process's routes.
	del := func(app string) int {
		req, _ := http.NewRequest("DELETE", srv.URL+"/v2/apps/"+app, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := del(mailID); st != 200 {
		t.Fatalf("DELETE /v2/apps/mail: %d", st)
	}
	if st := del(mailID); st != 404 {
		t.Fatalf("DELETE of a removed app: %d, want 404", st)
	}
	mustGet(t, srv.URL+"/v2/apps", nil, 200, &apps)
	if len(apps.Data) != 1 || apps.Data[0].ID != shop.AppID() {
		t.Fatalf("GET /v2/apps after the removal: %+v", apps.Data)
	}
	for deadline := time.Now().Add(time.Second); gateway.Routes(mailID + "-receipt"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a second after the removal, the gateway still routes to the removed app")
		}
	}
}

// mustGet GETs url, checks the status and that no CORS header is sent, and decodes the body.
func mustGet(t *testing.T, url string, h http.Header, status int, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if h != nil {
		req.Header = h.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("GET %s: HTTP %d (CORS %q), want %d", url, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
