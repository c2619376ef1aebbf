package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"google.golang.org/protobuf/types/known/durationpb"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqlitePersistence is SQLite (a file, or a file on tmpfs) for Temporal's stores, with the
// namespace and its search attributes written into it before the server starts. A new
// database keeps visibility in a file of its own (visibility.db), written through
// prepared statements (visibilityFactory; devserver.Start hands it over): on one file, a
// second connection's writes break Temporal's transactions (SQLITE_BUSY on their upgrade
// to a write). A data dir made before keeps visibility in temporal.db, written by
// Temporal's plugin.
func (o Options) sqlitePersistence(ctx context.Context, logger log.Logger) (config.Persistence, error) {
	sql, vis, shards, err := o.sqliteConfig(ctx, logger)
	if err != nil {
		return config.Persistence{}, err
	}
	if vis == nil {
		return config.Persistence{
			DefaultStore: "sqlite", VisibilityStore: "sqlite", NumHistoryShards: shards,
			DataStores: map[string]config.DataStore{"sqlite": {SQL: sql}},
		}, nil
	}
	return config.Persistence{
		DefaultStore: "sqlite", VisibilityStore: visibilityStoreName, NumHistoryShards: shards,
		DataStores: map[string]config.DataStore{
			"sqlite": {SQL: sql},
			// visibilityFactory opens IndexName with the main database's settings.
			visibilityStoreName: {CustomDataStoreConfig: &config.CustomDatastoreConfig{Name: visibilityStoreName, IndexName: vis.DatabaseName}},
		},
	}, nil
}

// sqliteConfig is the main database's config and, unless a data dir made before keeps
// visibility in it, visibility's.
func (o Options) sqliteConfig(ctx context.Context, logger log.Logger) (main, vis *config.SQL, stored int32, err error) {
	dir, attrs := o.DataDir, map[string]string{}
	fresh := true
	if o.InMemory {
		// Not SQLite's memory mode: its rollback journal lives in memory too and costs an
		// allocation per page written (a fifth of the CPU under load here, half the
		// throughput). A WAL file on tmpfs is memory as well, without that cost; Stop
		// removes it, and synchronous=OFF because nothing here outlives the process.
		dir, attrs["synchronous"] = o.ramDir, "OFF"
	} else {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, nil, 0, fmt.Errorf("devserver: data dir: %w", err)
		}
		attrs["synchronous"] = "NORMAL"
		_, err := os.Stat(filepath.Join(dir, "temporal.db"))
		fresh = errors.Is(err, os.ErrNotExist)
	}
	// The keys are SQLite's pragma names: the plugin passes unknown keys on as pragmas,
	// and SQLite ignores a pragma it does not know (an earlier "_journal_mode" left the
	// file in rollback-journal mode with a sync per commit). busy_timeout: visibility's
	// file has two connections, Temporal's (reads, deletes) and visibilityFactory's.
	attrs["mode"], attrs["journal_mode"], attrs["busy_timeout"] = "rwc", "WAL", "10000"
	db := func(name string) *config.SQL {
		return &config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: filepath.Join(dir, name), ConnectAttributes: maps.Clone(attrs)}
	}
	main = db("temporal.db")
	if fresh {
		if err := sqliteschema.SetupSchema(main); err != nil {
			return nil, nil, 0, fmt.Errorf("devserver: schema: %w", err)
		}
	} else if stored, err = storedShardCount(ctx, main, logger); err != nil {
		return nil, nil, 0, err
	}
	visFile := main.DatabaseName
	_, statErr := os.Stat(filepath.Join(dir, "visibility.db"))
	if hasVis := statErr == nil; fresh || hasVis {
		vis = db("visibility.db")
		visFile = vis.DatabaseName
		if !hasVis {
			if err := sqliteschema.SetupSchema(vis); err != nil {
				return nil, nil, 0, fmt.Errorf("devserver: visibility schema: %w", err)
			}
		}
	}
	if err := slimVisibility(ctx, visFile); err != nil {
		return nil, nil, 0, err
	}
	shards, err := resolveShards(stored, int32(o.HistoryShards), 1, "SQLite database "+main.DatabaseName)
	if err != nil {
		return nil, nil, 0, err
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("devserver: namespace: %w", err)
	}
	ns.Detail.Config.Retention = durationpb.New(o.Retention)
	if err := sqliteschema.CreateNamespaces(main, ns); err != nil {
		return nil, nil, 0, fmt.Errorf("devserver: namespace: %w", err)
	}
	return main, vis, shards, nil
}

// ramDir is where an in-memory database's file goes: /dev/shm (tmpfs) when there is one,
// else the temporary directory.
func ramRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// removeStaleRAMDirs removes the in-memory databases in root of processes that are gone:
// Stop removes its own, but a process that is killed, or a test binary that never stops
// its server, leaves its files in memory (tmpfs) until the machine restarts.
func removeStaleRAMDirs(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "tempest-temporal-*-*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(dir), "tempest-temporal-"), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		// On Unix FindProcess always succeeds, and signal 0 to a pid that is gone says
		// so; elsewhere the error is another one and the directory stays.
		if p, err := os.FindProcess(pid); err == nil && errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone) {
			_ = os.RemoveAll(dir)
		}
	}
}

// unusedVisibilityIndexes are the indexes of Temporal's SQLite visibility schema on columns
// that neither Tempest nor the Web UI's lists and filters use by default (history sizes,
// worker versioning, the preallocated Bool/Datetime/Double/Int attributes and CHASM's).
// Every run writes its visibility row twice (start, close: a REPLACE, so a delete and an
// insert in each index), and those writes were about a third of the embedded server's
// CPU under load; 33 of the schema's 58 indexes go. A query that filters on one of these
// columns still works, by a scan. The Keyword indexes stay (custom search attributes of
// that type, Tempest's among them, map onto them), as do those of the schedules and batch
// lists.
var unusedVisibilityIndexes = []string{
	"by_history_length", "by_history_size_bytes", "by_execution_duration", "by_state_transition_count",
	"by_temporal_pause_info", "by_temporal_worker_deployment_version",
	"by_temporal_workflow_versioning_behavior", "by_temporal_worker_deployment",
	"by_bool_01", "by_bool_02", "by_bool_03", "by_datetime_01", "by_datetime_02", "by_datetime_03",
	"by_double_01", "by_double_02", "by_double_03", "by_int_01", "by_int_02", "by_int_03",
	"by_temporal_bool_01", "by_temporal_bool_02", "by_temporal_datetime_01", "by_temporal_datetime_02",
	"by_temporal_double_01", "by_temporal_double_02", "by_temporal_int_01", "by_temporal_int_02",
	"by_temporal_keyword_01", "by_temporal_keyword_02", "by_temporal_keyword_03", "by_temporal_keyword_04",
	"by_temporal_low_cardinality_keyword_01",
}

// slimVisibility drops unusedVisibilityIndexes from the database file at path (before the
// server opens it; a no-op once done).
func slimVisibility(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("devserver: open %s: %w", path, err)
	}
	defer db.Close()
	for _, idx := range unusedVisibilityIndexes {
		if _, err := db.ExecContext(ctx, "DROP INDEX IF EXISTS "+idx); err != nil {
			return fmt.Errorf("devserver: %s: drop visibility index %s: %w", path, idx, err)
		}
	}
	return nil
}
