package adapter

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/tempestrun/tempest/internal/registry"
)

// backlogCollector reports, at each scrape, the workflow-task backlog of every app of the
// environment (Temporal's estimate for its task queue): runs waiting for a worker.
type backlogCollector struct {
	a    *App
	desc *prometheus.Desc
}

func newBacklogCollector(a *App) *backlogCollector {
	return &backlogCollector{a: a, desc: prometheus.NewDesc("tempest_task_queue_backlog",
		"Workflow tasks waiting for a worker on each app's task queue (Temporal's estimate), by app.", []string{"app"}, nil)}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := registry.Load(ctx, c.a.redis, c.a.opts.Environment)
	if err != nil {
		return // a scrape without the gauge; Redis' own trouble shows in /ready
	}
	for _, app := range s.Apps {
		resp, err := c.a.temporal.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace:     c.a.opts.Namespace,
			TaskQueue:     &taskqueuepb.TaskQueue{Name: app.TaskQueue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
			ReportStats:   true,
		})
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(resp.GetStats().GetApproximateBacklogCount()), app.ID)
	}
}
