package examples_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/tempesttest"
	"github.com/tempestrun/tempest/examples"
)

// The examples tested as a user tests their functions: with the test kit alone (no Redis,
// no Temporal server; virtual time, so the sleep and the retries' backoff take no time).
func TestExamplesWithTheTestKit(t *testing.T) {
	fns := adapter.NewFunctions("tempest-dev")
	if err := examples.Register(fns); err != nil {
		t.Fatal(err)
	}

	hello, err := tempesttest.Run(fns, "hello-world", tempesttest.Case{
		Events: []adapter.Event{{Name: "demo/hello.world", Data: map[string]any{"name": "Ada"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if err := hello.Decode(&out); err != nil || out["message"] != "Hello Ada!" {
		t.Fatalf("hello-world output %s (%v), want message Hello Ada!", hello.Output, err)
	}
	var ops []string
	for _, s := range hello.Steps {
		ops = append(ops, s.Op+" "+s.ID)
	}
	if got, want := ops, []string{"run get-name", "sleep wait-a-moment", "run greet"}; !slices.Equal(got, want) {
		t.Errorf("steps %q, want %q", got, want)
	}

	// Two failures asking for a retry after a second, then success: three attempts.
	charge, err := tempesttest.Run(fns, "charge", tempesttest.Case{
		Events: []adapter.Event{{Name: "demo/charge.requested", Data: map[string]any{"amount": 5, "fail_times": 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := charge.Decode(&out); err != nil || out["status"] != "charged" || len(charge.Step("charge").Attempts) != 3 {
		t.Fatalf("charge: %s with %d attempts, want charged after 3", charge.Output, len(charge.Step("charge").Attempts))
	}
	if a := charge.Step("charge").Attempts; a[1].At.Sub(a[0].At) < time.Second || a[0].Err == "" {
		t.Errorf("the second attempt began %s after a failed first (%q), want ≥ 1 s", a[1].At.Sub(a[0].At), a[0].Err)
	}

	// The test answers the step instead of its body: a decline that is not retried.
	declined, err := tempesttest.Run(fns, "charge", tempesttest.Case{
		Events: []adapter.Event{{Name: "demo/charge.requested", Data: map[string]any{"amount": 5}}},
		Steps:  map[string][]tempesttest.Answer{"charge": {tempesttest.Fail(adapter.NonRetriable(errors.New("card declined")))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := declined.Decode(&out); err != nil || out["status"] != "rejected" || out["reason"] != "card declined" {
		t.Errorf("declined charge: %s, want rejected with the reason", declined.Output)
	}
}
