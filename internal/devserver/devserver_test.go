package devserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// A data dir keeps the namespace across restarts, and a changed retention is applied.
func TestDataDirSurvivesRestartAndRetentionApplies(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, retention := range []time.Duration{48 * time.Hour, 72 * time.Hour} {
		s, err := Start(ctx, Options{DataDir: dir, Port: -1, Retention: retention})
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(client.Options{HostPort: s.Address(), Logger: discard})
		if err != nil {
			s.Stop()
			t.Fatal(err)
		}
		ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
		c.Close()
		s.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != retention {
			t.Fatalf("retention %s, want %s", got, retention)
		}
	}
}

func TestRetentionBelowMinimumIsRejected(t *testing.T) {
	if _, err := Start(context.Background(), Options{InMemory: true, Retention: time.Hour}); err == nil {
		t.Fatal("a 1h retention was accepted")
	}
}

// A data dir keeps the shard count it was created with; asking for another is an error
// that says what to set, and 0 takes the stored count.
func TestSQLiteShardCountIsChecked(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Start(ctx, Options{DataDir: dir, Port: -1, HistoryShards: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := Start(ctx, Options{DataDir: dir, Port: -1, HistoryShards: 1}); err == nil || !strings.Contains(err.Error(), "created with 2 history shards, not 1") {
		t.Fatalf("err = %v, want a shard mismatch", err)
	}
	s, err = Start(ctx, Options{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.HistoryShards() != 2 {
		t.Fatalf("HistoryShards() = %d, want the stored 2", s.HistoryShards())
	}
}
