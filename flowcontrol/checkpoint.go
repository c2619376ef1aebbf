package flowcontrol

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Checkpoints of SDK calls: an app running several steps in one call reports each finished
// step (POST /v1/checkpoint/{run}/async) before its answer. They are kept here, durable
// before the app's 200, until the call's outcome is in the run's history; a retried call
// sends them back as memoized steps, so a step the app checkpointed never runs again.
// A run's checkpoints are one list (a step id appears in it once the app has reported it; a
// later call is sent the ones it already has again, harmlessly). They expire CheckpointTTL
// after the last checkpoint, or CompletedTTL after the call that completed the run read them
// (long enough for its outcome to reach the run's history, however its worker fares).

// CheckpointTTL is how long a call's checkpoints are kept.
const CheckpointTTL = 24 * time.Hour

// CompletedTTL is how long a completed run's checkpoints are kept.
const CompletedTTL = 10 * time.Minute

// MaxCheckpointBytes bounds what one call may checkpoint, as Inngest bounds a run's state.
const MaxCheckpointBytes = 32 << 20

var (
	//go:embed checkpoint.lua
	checkpointSrc    string
	checkpointScript = redis.NewScript(checkpointSrc)
)

// CheckpointOutcome is checkpoint.lua's reply.
type CheckpointOutcome int

// Outcomes of AppendCheckpoint.
const (
	CheckpointStale    CheckpointOutcome = 0  // the call is not the one in flight (409)
	CheckpointStored   CheckpointOutcome = 1  // durable
	CheckpointTooLarge CheckpointOutcome = -1 // over MaxCheckpointBytes (413)
)

func inFlight(qi string, gen int) string { return fmt.Sprintf("%s:%d", qi, gen) }

// BeginCall marks generation gen of call qi of run as the one in flight and returns what
// the run's calls checkpointed so far (those of failed attempts included).
func BeginCall(ctx context.Context, rdb redis.UniversalClient, run, qi string, gen int) ([]json.RawMessage, error) {
	g, ops, _ := checkpointKeys(run)
	pipe := rdb.TxPipeline()
	pipe.Set(ctx, g, inFlight(qi, gen), CheckpointTTL)
	list := pipe.LRange(ctx, ops, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("checkpoints of %s: %w", run, err)
	}
	return raw(list.Val()), nil
}

// AppendCheckpoint stores ops checkpointed by generation gen of call qi.
func AppendCheckpoint(ctx context.Context, rdb redis.UniversalClient, run, qi string, gen int, ops []json.RawMessage) (CheckpointOutcome, error) {
	g, list, size := checkpointKeys(run)
	args := []any{inFlight(qi, gen), CheckpointTTL.Milliseconds(), MaxCheckpointBytes}
	for _, op := range ops {
		args = append(args, string(op))
	}
	n, err := checkpointScript.Run(ctx, rdb, []string{g, list, size}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("checkpoint of %s: %w", run, err)
	}
	switch o := CheckpointOutcome(n); o {
	case CheckpointStale, CheckpointStored, CheckpointTooLarge:
		return o, nil
	}
	return 0, fmt.Errorf("checkpoint.lua: unexpected reply %d", n)
}

// Checkpoints are the ops the run's calls checkpointed so far; completed (the app reported
// the run complete) shortens their life to CompletedTTL.
func Checkpoints(ctx context.Context, rdb redis.UniversalClient, run string, completed bool) ([]json.RawMessage, error) {
	g, list, size := checkpointKeys(run)
	pipe := rdb.TxPipeline()
	vals := pipe.LRange(ctx, list, 0, -1)
	if completed {
		for _, k := range []string{g, list, size} {
			pipe.PExpire(ctx, k, CompletedTTL)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("checkpoints of %s: %w", run, err)
	}
	return raw(vals.Val()), nil
}

func raw(vals []string) []json.RawMessage {
	out := make([]json.RawMessage, len(vals))
	for i, v := range vals {
		out[i] = json.RawMessage(v)
	}
	return out
}

// StoreCallState keeps the memoized steps and the events of a call whose body would be over
// the apps' 4 MiB limit: the call says use_api, and the app reads them back from the API
// (GET /v0/runs/{run}/actions and /batch). Kept CheckpointTTL, replaced by the next such call.
func StoreCallState(ctx context.Context, rdb redis.UniversalClient, run string, steps, events []byte) error {
	key := callStateKey(run)
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, key, "steps", steps, "events", events)
	pipe.PExpire(ctx, key, CheckpointTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("call state of %s: %w", run, err)
	}
	return nil
}

// ErrNoCallState is a run with no call state stored.
var ErrNoCallState = errors.New("no call state: the run has no call that needed the API")

// CallState is what StoreCallState kept for run.
func CallState(ctx context.Context, rdb redis.UniversalClient, run string) (steps, events []byte, err error) {
	vals, err := rdb.HMGet(ctx, callStateKey(run), "steps", "events").Result()
	if err != nil {
		return nil, nil, fmt.Errorf("call state of %s: %w", run, err)
	}
	s, ok1 := vals[0].(string)
	e, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return nil, nil, ErrNoCallState
	}
	return []byte(s), []byte(e), nil
}
