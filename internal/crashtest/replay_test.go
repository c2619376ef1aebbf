package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/tempestrun/tempest/adapter"
	"github.com/tempestrun/tempest/adapter/step"
	"github.com/tempestrun/tempest/api"
	"github.com/tempestrun/tempest/internal/testenv"
)

func init() {
	// replayable fails until the test sets its fix flag in Redis, then completes.
	limits["replayable"] = func(app *adapter.App) error {
		opts, err := redis.ParseURL(testenv.RedisURL())
		if err != nil {
			return err
		}
		rdb := redis.NewClient(opts)
		key := fixedKey(app.Options().Environment)
		_, err = adapter.CreateFunction(app, adapter.FunctionOpts{ID: "replayable", Retries: adapter.Ptr(0)},
			adapter.EventTrigger("crash/replayable", nil),
			func(ctx context.Context, in adapter.Input[map[string]any]) (any, error) {
				return step.Run(ctx, "work", func(ctx context.Context) (bool, error) {
					if n, _ := rdb.Exists(ctx, key).Result(); n == 0 {
						return false, adapter.NonRetriable(errors.New("not fixed yet"))
					}
					return true, nil
				})
			})
		return err
	}
}

func fixedKey(env string) string { return "crashtest:" + env + ":replayable:fixed" }

// A bulk replay of 200 failed runs at 20 runs per second, its worker process killed with
// SIGKILL midway and started again: every failed run is replayed exactly once, and the
// replay never starts runs faster than its rate.
func TestReplaySurvivesAKilledWorker(t *testing.T) {
	tc, rdb := testenv.Services(t)
	temporal := testenv.Server().Address()
	appID := fmt.Sprintf("replay-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { testenv.DropEnvironment(appID); rdb.Del(context.Background(), fixedKey(appID)) })
	dbURL := sqliteLog(t)
	worker := []string{envFunctions + "=replayable", "DATABASE_URL=" + dbURL}
	p := startChild(t, "", temporal, appID, worker...)
	checker := newChecker(t, tc, rdb, appID, dbURL)
	ctx := context.Background()

	const runs, rate = 200, 20.0
	from := time.Now().Add(-time.Second)
	events := make([]json.RawMessage, runs)
	for i := range events {
		events[i] = json.RawMessage(fmt.Sprintf(`{"name":"crash/replayable","data":{"n":%d}}`, i))
	}
	for i := 0; i < runs; i += 50 {
		if _, err := checker.Ingest(ctx, "", events[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	failed := fmt.Sprintf("%s = '%s-replayable' AND ExecutionStatus = 'Failed'", adapter.SAFunctionID.GetName(), appID)
	waitCount(t, tc, failed, runs)
	until := time.Now()
	if err := rdb.Set(ctx, fixedKey(appID), 1, 10*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	req := api.ReplayRequest{AppID: appID, FunctionID: "replayable", Name: "the fix", From: &from, Until: &until, Rate: rate}
	if err := req.Validate(time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := checker.StartReplay(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Kill the worker driving the replay once a third of the runs are started.
	for started := 0; started < runs/3; {
		if cur, err := checker.Replay(ctx, r.ID); err == nil {
			started = cur.Started
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	startChild(t, "", temporal, appID, worker...)

	deadline := time.Now().Add(3 * time.Minute)
	for {
		cur, err := checker.Replay(ctx, r.ID)
		if err == nil && cur.Status != api.ReplayRunning {
			r = cur
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay still running after 3 minutes: %+v %v", cur, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.Status != api.ReplayCompleted || r.Matched == nil || *r.Matched != runs || r.Started != runs || r.Skipped != 0 {
		t.Fatalf("replay ended %+v", r)
	}

	// Exactly one replayed run per failed run, all completed, started no faster than rate.
	replayed := fmt.Sprintf("%s = '%s'", adapter.SAReplayID.GetName(), r.ID)
	waitCount(t, tc, replayed+" AND ExecutionStatus = 'Completed'", runs)
	var origs []string
	var first, last time.Time
	var token []byte
	for {
		page, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: replayed, NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range page.GetExecutions() {
			var orig string
			_ = converter.GetDefaultDataConverter().FromPayload(ex.GetSearchAttributes().GetIndexedFields()[adapter.SARerunOf.GetName()], &orig)
			origs = append(origs, orig)
			at := ex.GetStartTime().AsTime()
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		}
		if token = page.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	slices.Sort(origs)
	if len(origs) != runs || len(slices.Compact(origs)) != runs {
		t.Fatalf("%d replayed runs of %d distinct originals, want %d of %d", len(origs), len(slices.Compact(origs)), runs, runs)
	}
	// Batches of rate runs begin a second apart at the least: the first and last batch
	// are (runs/rate - 1) seconds apart or more, whatever the kill cost.
	span := last.Sub(first)
	if floor := time.Duration((runs/rate-1)*float64(time.Second)) - 100*time.Millisecond; span < floor {
		t.Fatalf("200 runs started within %s: faster than %v per second", span, rate)
	}
	t.Logf("replayed %d runs at %.1f runs/s (asked %v/s; first to last start %s, through a SIGKILL of the worker)",
		runs, float64(runs-int(rate))/span.Seconds(), rate, span.Round(time.Millisecond))
}

// waitCount waits until visibility counts n workflows for query.
func waitCount(t *testing.T, tc interface {
	CountWorkflow(context.Context, *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error)
}, query string, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res, err := tc.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && res.GetCount() >= n {
			if res.GetCount() > n {
				t.Fatalf("%d workflows for %s, want %d", res.GetCount(), query, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workflows for %s after 2 minutes, want %d (%v)", res.GetCount(), query, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
