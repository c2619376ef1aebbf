package devserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/serialization"
	persistencesql "go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
)

// clusterName is the name the embedded server gives its cluster (in config and database).
const clusterName = "active"

// storedShardCount is the history shard count in a database's cluster metadata, or 0 when
// no server has started on it yet. Temporal fixes the count on first start and afterwards
// only warns and uses the stored one, so a mismatch is caught here instead.
func storedShardCount(ctx context.Context, cfg *config.SQL, logger log.Logger) (int32, error) {
	db, err := persistencesql.NewSQLDB(sqlplugin.DbKindMain, cfg, resolver.NewNoopResolver(), logger, metrics.NoopMetricsHandler)
	if err != nil {
		return 0, fmt.Errorf("devserver: open %q: %w", cfg.DatabaseName, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	row, err := db.GetClusterMetadata(ctx, &sqlplugin.ClusterMetadataFilter{ClusterName: clusterName})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("devserver: read cluster metadata of %q: %w", cfg.DatabaseName, err)
	}
	cm, err := serialization.NewSerializer().DeserializeClusterMetadata(persistence.NewDataBlob(row.Data, row.DataEncoding))
	if err != nil {
		return 0, fmt.Errorf("devserver: decode cluster metadata of %q: %w", cfg.DatabaseName, err)
	}
	return cm.GetHistoryShardCount(), nil
}

// resolveShards settles the shard count: the stored one when the caller did not choose
// (want 0), else want, which must match a stored count.
func resolveShards(stored, want, fallback int32, where string) (int32, error) {
	switch {
	case stored == 0 && want == 0:
		return fallback, nil
	case stored == 0:
		return want, nil
	case want == 0 || want == stored:
		return stored, nil
	}
	return 0, fmt.Errorf("devserver: %s was created with %d history shards, not %d: Temporal fixes the count when it first starts on a database; set HistoryShards to %d (or 0 to use what the database has), or use a new database",
		where, stored, want, stored)
}
