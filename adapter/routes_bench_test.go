package adapter

import (
	"fmt"
	"testing"
)

// BenchmarkMatch1000Functions is the registry's cost on ingest: matching one event against
// the routes of 1 000 functions of 20 apps (50 events per app, half with a CEL condition,
// one wildcard per app).
func BenchmarkMatch1000Functions(b *testing.B) {
	var fns []*function
	for app := range 20 {
		appID := fmt.Sprintf("app%d", app)
		for j := range 50 {
			var cond *string
			if j%2 == 0 {
				cond = Ptr(`event.data.amount > 10`)
			}
			trig := EventTrigger(fmt.Sprintf("%s/event%d", appID, j), cond)
			if j == 49 {
				trig = EventTrigger(appID+"/*", nil)
			}
			f, err := newFunction(appID, FunctionOpts{ID: fmt.Sprint("fn", j)}, trig)
			if err != nil {
				b.Fatal(err)
			}
			fns = append(fns, f)
		}
	}
	a := &App{}
	a.routes.Store(buildRoutes(fns, nil))
	ev := &accepted{ev: inbound{Name: "app7/event10"}, mapForm: map[string]any{"name": "app7/event10", "data": map[string]any{"amount": 42.0}}}
	if n := len(a.match(ev)); n != 2 { // its function and its app's wildcard
		b.Fatalf("matched %d functions, want 2", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.match(ev)
	}
}

// BenchmarkMatchOneFunction is the same event against a single function: the baseline.
func BenchmarkMatchOneFunction(b *testing.B) {
	f, err := newFunction("app7", FunctionOpts{ID: "fn10"}, EventTrigger("app7/event10", Ptr(`event.data.amount > 10`)))
	if err != nil {
		b.Fatal(err)
	}
	a := &App{}
	a.routes.Store(buildRoutes([]*function{f}, nil))
	ev := &accepted{ev: inbound{Name: "app7/event10"}, mapForm: map[string]any{"name": "app7/event10", "data": map[string]any{"amount": 42.0}}}
	b.ReportAllocs()
	for b.Loop() {
		a.match(ev)
	}
}
