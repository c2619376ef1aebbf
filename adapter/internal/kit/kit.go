// Package kit is the door from package adapter to its test kit (adapter/tempesttest): what
// the kit needs of a defined function and adapter does not export to users.
package kit

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

// Lookup finds function id (its id in the app, or "<app>-<id>") among the definitions fs
// (an *adapter.Functions). Package adapter sets it.
var Lookup func(fs any, id string) (Function, bool)
