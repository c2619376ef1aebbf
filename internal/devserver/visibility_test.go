package devserver

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/serialization"
	"go.temporal.io/server/common/persistence/visibility/store"
	sqlvisibility "go.temporal.io/server/common/persistence/visibility/store/sql"
	"go.temporal.io/server/common/resolver"
	"go.temporal.io/server/common/searchattribute"
	sqliteschema "go.temporal.io/server/schema/sqlite"
)

// preparedVisibility writes the rows Temporal's own SQL store writes: the same requests
// through both, on two databases, leave every column (generated ones and the full-text
// tables included) equal.
func TestPreparedVisibilityWritesTemporalsRows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	conf := func(name string) *config.SQL {
		c := &config.SQL{PluginName: "sqlite", DatabaseName: filepath.Join(dir, name),
			ConnectAttributes: map[string]string{"mode": "rwc", "journal_mode": "WAL", "busy_timeout": "10000"}}
		if err := sqliteschema.SetupSchema(c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	theirs, ours := conf("theirs.db"), conf("ours.db")
	types := searchattribute.NewTestProvider()
	mapper := searchattribute.NewTestMapperProvider(nil)
	plain, err := sqlvisibility.NewSQLVisibilityStore(*theirs, resolver.NewNoopResolver(), types, mapper, nil,
		dynamicconfig.GetBoolPropertyFn(false), log.NewNoopLogger(), metrics.NoopMetricsHandler, serialization.NewSerializer())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	prepared, err := visibilityFactory{main: ours}.NewVisibilityStore(config.CustomDatastoreConfig{IndexName: ours.DatabaseName},
		types, mapper, nil, nil, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		t.Fatal(err)
	}
	defer prepared.Close()

	start := time.Date(2026, 12, 7, 10, 11, 12, 123456789, time.FixedZone("x", 3600))
	attrs := func(m map[string]any) *commonpb.SearchAttributes {
		typeMap := searchattribute.TestNameTypeMap()
		sa, err := searchattribute.Encode(m, &typeMap)
		if err != nil {
			t.Fatal(err)
		}
		return sa
	}
	base := func(run string, task int64, sa *commonpb.SearchAttributes) *store.InternalVisibilityRequestBase {
		parent := "parent-wf"
		return &store.InternalVisibilityRequestBase{
			NamespaceID: "ns-id", WorkflowID: "wf-" + run, RunID: run, WorkflowTypeName: "Type",
			StartTime: start, ExecutionTime: start.Add(time.Second), Status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
			TaskID: task, TaskQueue: "tq", Memo: persistence.NewDataBlob([]byte("memo"), enumspb.ENCODING_TYPE_PROTO3.String()),
			SearchAttributes: sa, ParentWorkflowID: &parent, RootWorkflowID: "root", RootRunID: "root-run",
		}
	}
	full := attrs(map[string]any{
		"Keyword01": "fn-1", "Keyword02": "evt", "KeywordList01": []string{"a", "b c"}, "Text01": "some words",
		"Int01": int64(42), "Double01": 1.5, "Bool01": true, "Datetime01": start,
	})
	closed := func(b *store.InternalVisibilityRequestBase) *store.InternalRecordWorkflowExecutionClosedRequest {
		b.Status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		return &store.InternalRecordWorkflowExecutionClosedRequest{
			InternalVisibilityRequestBase: b, CloseTime: start.Add(time.Minute), HistoryLength: 7,
			HistorySizeBytes: 900, ExecutionDuration: time.Minute, StateTransitionCount: 3,
		}
	}
	for _, s := range []store.VisibilityStore{plain, prepared} {
		steps := []error{
			s.RecordWorkflowExecutionStarted(ctx, &store.InternalRecordWorkflowExecutionStartedRequest{InternalVisibilityRequestBase: base("r1", 10, full)}),
			s.RecordWorkflowExecutionClosed(ctx, closed(base("r1", 20, full))),
			// An older task (lower version) does not replace the closed row.
			s.UpsertWorkflowExecution(ctx, &store.InternalUpsertWorkflowExecutionRequest{InternalVisibilityRequestBase: base("r1", 15, nil)}),
			s.RecordWorkflowExecutionStarted(ctx, &store.InternalRecordWorkflowExecutionStartedRequest{InternalVisibilityRequestBase: base("r2", 11, nil)}),
			// A second start of the same run changes nothing.
			s.RecordWorkflowExecutionStarted(ctx, &store.InternalRecordWorkflowExecutionStartedRequest{InternalVisibilityRequestBase: base("r2", 12, full)}),
			s.UpsertWorkflowExecution(ctx, &store.InternalUpsertWorkflowExecutionRequest{InternalVisibilityRequestBase: base("r2", 13, attrs(map[string]any{"Keyword03": "x"}))}),
			// Closed without a start row, with a zero execution time.
			s.RecordWorkflowExecutionClosed(ctx, closed(func() *store.InternalVisibilityRequestBase {
				b := base("r3", 30, full)
				b.ExecutionTime = time.Time{}
				return b
			}())),
		}
		for i, err := range steps {
			if err != nil {
				t.Fatalf("%T step %d: %v", s, i, err)
			}
		}
	}
	for _, table := range []string{"executions_visibility", "executions_visibility_fts_text", "executions_visibility_fts_keyword_list"} {
		want, got := dump(t, theirs.DatabaseName, table), dump(t, ours.DatabaseName, table)
		if len(want) != 3 && table == "executions_visibility" {
			t.Fatalf("%d rows in Temporal's store, want 3", len(want))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s differs:\nprepared: %v\ntemporal: %v", table, got, want)
		}
	}
}

// dump is every row of table, every column as text, by rowid.
func dump(t *testing.T, path, table string) []map[string]string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY rowid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = fmt.Sprintf("%T:%v", vals[i], vals[i])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
