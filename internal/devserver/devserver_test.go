package devserver

import (
	"context"
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
