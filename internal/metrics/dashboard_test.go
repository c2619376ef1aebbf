package metrics

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every metric the Grafana dashboard queries exists and is documented in the README, and
// every panel is described.
func TestDashboardQueriesKnownMetrics(t *testing.T) {
	known := map[string]bool{"tempest_task_queue_backlog": true} // adapter's collector
	for _, n := range []string{RunsFinished, StepAttempts, ConcurrencyWait} {
		known[n+"_total"] = true
	}
	for _, n := range []string{RunDuration, StepDuration, ConcurrencyWaitTime} {
		known[n+"_seconds"] = true
	}
	m := New()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if !v.Field(i).CanInterface() {
			continue
		}
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		if sm := fqName.FindStringSubmatch((<-ch).String()); sm != nil {
			known[sm[1]] = true
		}
	}
	raw, err := os.ReadFile("../../deploy/grafana/tempest.json")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title, Description string
			Targets            []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`tempest_[a-z_]+`)
	for _, p := range dash.Panels {
		if p.Description == "" || !strings.Contains(string(readme), "| "+p.Title+" |") {
			t.Errorf("panel %q: no description, or no row in the README's dashboard table", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				n = strings.TrimSuffix(n, "_bucket")
				if !known[n] {
					t.Errorf("panel %q queries %s, which Tempest does not export", p.Title, n)
				}
				if !strings.Contains(string(readme), "`"+n+"`") {
					t.Errorf("panel %q queries %s, which the README does not document", p.Title, n)
				}
			}
		}
	}
	if len(dash.Panels) < 10 {
		t.Fatalf("%d panels", len(dash.Panels))
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"temporal_request": "temporal_request", "task-queue": "task_queue", "9lives": "_9lives", "": "_", "a.b c": "a_b_c"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
