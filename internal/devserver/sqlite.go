package devserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"google.golang.org/protobuf/types/known/durationpb"
)

// sqlitePersistence is one SQLite database (file or in memory) for both stores, with the
// namespace and its search attributes written into it before the server starts.
func (o Options) sqlitePersistence(ctx context.Context, logger log.Logger) (config.Persistence, error) {
	sql, shards, err := o.sqliteConfig(ctx, logger)
	if err != nil {
		return config.Persistence{}, err
	}
	return config.Persistence{
		DefaultStore: "sqlite", VisibilityStore: "sqlite", NumHistoryShards: shards,
		DataStores: map[string]config.DataStore{"sqlite": {SQL: sql}},
	}, nil
}

func (o Options) sqliteConfig(ctx context.Context, logger log.Logger) (*config.SQL, int32, error) {
	var stored int32
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if o.InMemory {
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		conf.DatabaseName = "tempest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	} else {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, 0, fmt.Errorf("devserver: data dir: %w", err)
		}
		conf.ConnectAttributes = map[string]string{"mode": "rwc", "_journal_mode": "WAL", "_synchronous": "NORMAL"}
		conf.DatabaseName = filepath.Join(o.DataDir, "temporal.db")
		_, err := os.Stat(conf.DatabaseName)
		if errors.Is(err, os.ErrNotExist) {
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, 0, fmt.Errorf("devserver: schema: %w", err)
			}
		} else if stored, err = storedShardCount(ctx, conf, logger); err != nil {
			return nil, 0, err
		}
	}
	shards, err := resolveShards(stored, int32(o.HistoryShards), 1, "SQLite database "+conf.DatabaseName)
	if err != nil {
		return nil, 0, err
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, o.SearchAttributes)
	if err != nil {
		return nil, 0, fmt.Errorf("devserver: namespace: %w", err)
	}
	ns.Detail.Config.Retention = durationpb.New(o.Retention)
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, 0, fmt.Errorf("devserver: namespace: %w", err)
	}
	return conf, shards, nil
}
