package devserver

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/server/chasm"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/namespace"
	"go.temporal.io/server/common/persistence/serialization"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/persistence/visibility/store"
	sqlvisibility "go.temporal.io/server/common/persistence/visibility/store/sql"
	"go.temporal.io/server/common/resolver"
	"go.temporal.io/server/common/searchattribute"
)

// visibilityStoreName names the custom visibility data store of the SQLite shape.
const visibilityStoreName = "sqlite-visibility"

// Temporal's SQLite statements for the visibility row (its plugin keeps them unexported):
// the row a run gets at start, and the row that replaces it at close unless a newer one
// (higher _version, the task id) is there.
var (
	visibilityInsert = fmt.Sprintf(`INSERT INTO executions_visibility (%s) VALUES (%s) ON CONFLICT (namespace_id, run_id) DO NOTHING`,
		strings.Join(sqlplugin.DbFields, ", "), placeholders(len(sqlplugin.DbFields)))
	visibilityUpsert = fmt.Sprintf(`INSERT INTO executions_visibility (%s) VALUES (%s) ON CONFLICT (namespace_id, run_id) DO UPDATE SET %s WHERE executions_visibility.%s < EXCLUDED.%s`,
		strings.Join(sqlplugin.DbFields, ", "), placeholders(len(sqlplugin.DbFields)), excludedSet(sqlplugin.DbFields),
		sqlplugin.VersionColumnName, sqlplugin.VersionColumnName)
)

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func excludedSet(fields []string) string {
	set := make([]string, len(fields))
	for i, f := range fields {
		set[i] = f + " = excluded." + f
	}
	return strings.Join(set, ", ")
}

// visibilityFactory makes Temporal's SQL visibility store on the SQLite file of the
// custom data store's IndexName, opened with the main database's settings, and its
// writes through preparedVisibility.
type visibilityFactory struct{ main *config.SQL }

func (f visibilityFactory) NewVisibilityStore(
	cfg config.CustomDatastoreConfig,
	saProvider searchattribute.Provider,
	saMapperProvider searchattribute.MapperProvider,
	_ namespace.Registry,
	chasmRegistry *chasm.Registry,
	r resolver.ServiceResolver,
	logger log.Logger,
	mh metrics.Handler,
) (store.VisibilityStore, error) {
	conf := *f.main
	conf.DatabaseName, conf.ConnectAttributes = cfg.IndexName, maps.Clone(f.main.ConnectAttributes)
	inner, err := sqlvisibility.NewSQLVisibilityStore(conf, r, saProvider, saMapperProvider, chasmRegistry,
		dynamicconfig.GetBoolPropertyFn(false), logger, mh, serialization.NewSerializer())
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", sqliteDSN(&conf))
	if err != nil {
		inner.Close()
		return nil, err
	}
	// One connection: SQLite has one writer at a time, and the statements below are
	// prepared on it once.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(0)
	v := &preparedVisibility{VisibilityStore: inner, saProvider: saProvider, db: db}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v.insert, err = db.PrepareContext(ctx, visibilityInsert); err == nil {
		v.upsert, err = db.PrepareContext(ctx, visibilityUpsert)
	}
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("devserver: prepare the visibility statements: %w", err)
	}
	return v, nil
}

// sqliteDSN is the data source name Temporal's SQLite plugin opens for conf (its own
// builder is unexported): the same file, pragmas and time format.
func sqliteDSN(conf *config.SQL) string {
	q := []string{}
	for k, v := range conf.ConnectAttributes {
		if k == "mode" {
			q = append(q, "mode="+v)
			continue
		}
		q = append(q, "_pragma="+k+"%3D"+v)
	}
	q = append(q, "_time_format=sqlite")
	return "file:" + conf.DatabaseName + "?" + strings.Join(q, "&")
}

// preparedVisibility is Temporal's SQL visibility store with the writes every run makes
// (its row at start, the replacement at close, an upsert when its search attributes
// change) through statements prepared once. Temporal's SQLite plugin prepares each
// statement anew, and for the visibility table (some 60 generated columns, 25 indexes,
// full-text triggers) the prepare and its teardown cost more than the write itself: a
// quarter of the embedded server's CPU under load. Reads and deletes stay Temporal's.
type preparedVisibility struct {
	*sqlvisibility.VisibilityStore
	saProvider     searchattribute.Provider
	db             *sql.DB
	insert, upsert *sql.Stmt
}

func (v *preparedVisibility) Close() {
	for _, st := range []*sql.Stmt{v.insert, v.upsert} {
		if st != nil {
			_ = st.Close()
		}
	}
	_ = v.db.Close()
	v.VisibilityStore.Close()
}

func (v *preparedVisibility) RecordWorkflowExecutionStarted(ctx context.Context, req *store.InternalRecordWorkflowExecutionStartedRequest) error {
	row, err := v.row(req.InternalVisibilityRequestBase)
	if err != nil {
		return err
	}
	_, err = v.insert.ExecContext(ctx, rowArgs(row)...)
	return err
}

func (v *preparedVisibility) RecordWorkflowExecutionClosed(ctx context.Context, req *store.InternalRecordWorkflowExecutionClosedRequest) error {
	row, err := v.row(req.InternalVisibilityRequestBase)
	if err != nil {
		return err
	}
	row.CloseTime = new(toSQLiteTime(req.CloseTime))
	row.HistoryLength = &req.HistoryLength
	row.HistorySizeBytes = &req.HistorySizeBytes
	row.ExecutionDuration = new(req.ExecutionDuration.Nanoseconds())
	row.StateTransitionCount = &req.StateTransitionCount
	return v.replace(ctx, row)
}

func (v *preparedVisibility) UpsertWorkflowExecution(ctx context.Context, req *store.InternalUpsertWorkflowExecutionRequest) error {
	row, err := v.row(req.InternalVisibilityRequestBase)
	if err != nil {
		return err
	}
	return v.replace(ctx, row)
}

func (v *preparedVisibility) replace(ctx context.Context, row *sqlplugin.VisibilityRow) error {
	res, err := v.upsert.ExecContext(ctx, rowArgs(row)...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 2 {
		return fmt.Errorf("devserver: visibility upsert of run %s changed %d rows (%v)", row.RunID, n, err)
	}
	return nil
}

// row is the visibility row of req as Temporal's SQL store makes it (generateVisibilityRow
// and the SQLite plugin's prepareRowForDB): search attributes decoded by their types,
// invalid values left out, lists joined by the plugin's separator, times in UTC.
func (v *preparedVisibility) row(req *store.InternalVisibilityRequestBase) (*sqlplugin.VisibilityRow, error) {
	row := &sqlplugin.VisibilityRow{
		NamespaceID: req.NamespaceID, WorkflowID: req.WorkflowID, RunID: req.RunID,
		StartTime: toSQLiteTime(req.StartTime), ExecutionTime: toSQLiteTime(req.ExecutionTime),
		WorkflowTypeName: req.WorkflowTypeName, Status: int32(req.Status),
		Memo: req.Memo.Data, Encoding: req.Memo.EncodingType.String(), TaskQueue: req.TaskQueue,
		ParentWorkflowID: req.ParentWorkflowID, ParentRunID: req.ParentRunID,
		RootWorkflowID: req.RootWorkflowID, RootRunID: req.RootRunID, Version: req.TaskID,
	}
	if req.SearchAttributes == nil {
		return row, nil
	}
	types, err := v.saProvider.GetSearchAttributes(v.GetIndexName(), false)
	if err != nil {
		return nil, serviceerror.NewUnavailablef("Unable to read search attributes types: %v", err)
	}
	attrs, err := searchattribute.Decode(req.SearchAttributes, &types, false)
	if err != nil {
		return nil, err
	}
	if attrs, err = v.ValidateCustomSearchAttributes(attrs); err != nil {
		if _, ok := err.(*serviceerror.InvalidArgument); !ok {
			return nil, err
		}
	}
	out := sqlplugin.VisibilitySearchAttributes{}
	for name, value := range attrs {
		switch x := value.(type) {
		case nil:
		case []string:
			out[name] = strings.Join(x, "♡")
		case time.Time:
			out[name] = x.Format(time.RFC3339Nano)
		default:
			out[name] = x
		}
	}
	row.SearchAttributes = &out
	return row, nil
}

// minSQLiteTime is what the SQLite plugin writes for the zero time.
var minSQLiteTime = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)

// toSQLiteTime is the SQLite plugin's time conversion: UTC, microseconds, and its
// minimum for the zero time.
func toSQLiteTime(t time.Time) time.Time {
	if t.IsZero() {
		return minSQLiteTime
	}
	return t.UTC().Truncate(time.Microsecond)
}

// rowArgs are row's fields in the order of sqlplugin.DbFields (the struct's order).
func rowArgs(row *sqlplugin.VisibilityRow) []any {
	rv := reflect.ValueOf(row).Elem()
	args := make([]any, rv.NumField())
	for i := range args {
		args[i] = rv.Field(i).Interface()
	}
	return args
}
