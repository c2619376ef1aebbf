// Package activities holds the activity entry points of Tempest runs that are not user
// steps: handing events to the ingest path (system events).
package activities

import (
	"context"
	"encoding/json"

	"github.com/oklog/ulid/v2"
)

// Sender accepts events sent by runs. internal allows Tempest's reserved inngest/ names.
// eventIDs are derived by the workflow, so a retried send is idempotent.
type Sender interface {
	SendEvents(ctx context.Context, events []json.RawMessage, eventIDs []ulid.ULID, internal bool) ([]string, error)
}

// SendEvents is the local-activity entry point that emits a run's system events
// (inngest/function.finished, .failed, .cancelled). Its recorded type is "SendEvents".
func SendEvents(ctx context.Context, s Sender, events []json.RawMessage, eventIDs []ulid.ULID) ([]string, error) {
	return s.SendEvents(ctx, events, eventIDs, true)
}
