// Package bridge is what adapter's sibling packages (step, group, tempesttest) need from
// package adapter that adapter does not export to users. Package adapter fills it in.
package bridge

import (
	"time"

	"github.com/tempestrun/tempest/workflows"
)

// Function is a defined function as its runs see it.
type Function struct {
	Slug          string
	Retries       int
	Cancel        []workflows.CancelRule
	FinishTimeout time.Duration
	Handler       workflows.Handler
	// Triggers reports whether an event (its name and map form) fires the function.
	Triggers func(name string, event map[string]any) bool
}

var (
	// Lookup finds function id (its id in the app, or "<app>-<id>") among the
	// definitions fs (an *adapter.Functions).
	Lookup func(fs any, id string) (Function, bool)
	// ToRun hands an error of user code (adapter.NonRetriable, RetryAfter, a StepError) to
	// the run machinery; FromRun gives user code a step's failure as an *adapter.StepError.
	ToRun, FromRun func(error) error
)
