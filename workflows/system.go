package workflows

import (
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names of the system events Tempest emits, as Inngest names them.
const (
	EventFunctionFinished  = "inngest/function.finished"
	EventFunctionFailed    = "inngest/function.failed"
	EventFunctionCancelled = "inngest/function.cancelled"
)

// finishedData is the data of inngest/function.finished, .failed and .cancelled.
type finishedData struct {
	FunctionID    string            `json:"function_id"`
	RunID         string            `json:"run_id"`
	Event         json.RawMessage   `json:"event"`
	Events        []json.RawMessage `json:"events"`
	Result        json.RawMessage   `json:"result,omitempty"`
	Error         *errorData        `json:"error,omitempty"`
	CorrelationID string            `json:"correlation_id,omitempty"`
	Inngest       struct {
		Status string `json:"status"`
	} `json:"_inngest"`
}

// errorData is a run's error as Inngest serializes it.
type errorData struct {
	Error   string `json:"error"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// DeriveID is a ULID stamped at t whose entropy is a hash of parts: the same parts give
// the same id, so an event a run sends keeps its id when the send is retried. Runs stamp
// with their start time, which (unlike workflow.Now) is the same in every workflow task.
func DeriveID(t time.Time, parts ...string) ulid.ULID {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	_ = id.SetEntropy(h.Sum(nil)[:10])
	return id
}

// emitFinished sends the run's system events. Runs triggered by function.finished/failed/
// cancelled emit none, so a function that reacts to them cannot loop.
func (st *runState) emitFinished(ctx workflow.Context, status string, result any, failure *errorData) error {
	if len(st.in.Events) == 0 {
		return nil
	}
	var trigger struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(st.in.Events[0], &trigger)
	switch trigger.Name {
	case EventFunctionFinished, EventFunctionFailed, EventFunctionCancelled:
		return nil
	}
	data := finishedData{FunctionID: st.in.FunctionID, RunID: st.in.RunID, Event: st.in.Events[0], Events: st.in.Events,
		CorrelationID: st.in.CorrelationID}
	data.Inngest.Status = status
	if failure != nil {
		data.Error = failure
	} else if status == "Completed" && result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return err
		}
		data.Result = b
	}
	now := workflow.Now(ctx)
	mk := func(name, id string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"name": name, "id": id, "ts": now.UnixMilli(), "data": data})
		return b
	}
	born := workflow.GetInfo(ctx).WorkflowStartTime
	finishedID := DeriveID(born, st.in.RunID, EventFunctionFinished)
	events := []json.RawMessage{mk(EventFunctionFinished, finishedID.String())}
	eventIDs := []ulid.ULID{finishedID}
	switch status {
	case "Failed":
		events = append(events, mk(EventFunctionFailed, st.in.RunID))
		eventIDs = append(eventIDs, DeriveID(born, st.in.RunID, EventFunctionFailed))
	case "Cancelled":
		events = append(events, mk(EventFunctionCancelled, st.in.RunID))
		eventIDs = append(eventIDs, DeriveID(born, st.in.RunID, EventFunctionCancelled))
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 24 * time.Hour,
		StartToCloseTimeout:    time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{MaximumInterval: time.Minute},
		Summary:                "emit " + status + " events",
	})
	return workflow.ExecuteLocalActivity(lctx, st.acts.SendEvents, events, eventIDs).Get(lctx, nil)
}
