package devserver

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql/driver"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql/session"
	"go.temporal.io/server/common/resolver"
	schematool "go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// Paths of Temporal's PostgreSQL schemas inside the server module's embedded schema files
// (go.temporal.io/server/schema), as temporal-sql-tool's --schema-name takes them.
const (
	pgTemporalSchema   = "postgresql/v12/temporal"
	pgVisibilitySchema = "postgresql/v12/visibility"
	// defaultPostgresShards when neither the caller nor an existing database says: more
	// than one, so shard routing is exercised as on a production cluster.
	defaultPostgresShards = 4
)

// Lower-case letters, digits and '_' only: Temporal's plugin interpolates the name into
// CREATE/DROP DATABASE unquoted in one place and quoted in another, which agree only then.
// At most 52 bytes, so "<name>_visibility" fits PostgreSQL's 63-byte identifiers.
var pgDatabaseName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,51}$`)

// postgresConfigs parses a postgres://user[:password]@host[:port]/dbname[?attr=value] URL
// into the SQL configs of the Temporal database and of its visibility database
// (dbname + "_visibility"). Query parameters (e.g. sslmode) become connect attributes.
func postgresConfigs(raw string) (main, visibility *config.SQL, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("devserver: database URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, nil, fmt.Errorf("devserver: database URL %q: use postgres://user@host:port/dbname", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, nil, fmt.Errorf("devserver: database URL %q has no host: use postgres://user@host:port/dbname", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	name := u.Path
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		name = "temporal"
	}
	if !pgDatabaseName.MatchString(name) {
		return nil, nil, fmt.Errorf("devserver: database name %q: use at most 52 lower-case letters, digits or '_' (the visibility database is %q + \"_visibility\")", name, name)
	}
	attrs := map[string]string{}
	for k, v := range u.Query() {
		attrs[k] = v[len(v)-1]
	}
	password, _ := u.User.Password()
	base := config.SQL{
		PluginName:        postgresql.PluginNamePGX,
		User:              u.User.Username(),
		Password:          password,
		ConnectProtocol:   "tcp",
		ConnectAddr:       net.JoinHostPort(u.Hostname(), port),
		ConnectAttributes: attrs,
		// Every service of the embedded server opens its own pools; PostgreSQL's default
		// max_connections is 100, shared with everything else on the database server.
		MaxConns:        10,
		MaxIdleConns:    10,
		MaxConnLifetime: time.Hour,
	}
	m, v := base, base
	m.DatabaseName = name
	v.DatabaseName = name + "_visibility"
	v.ConnectAttributes = maps.Clone(attrs)
	v.MaxConns, v.MaxIdleConns = 4, 4
	return &m, &v, nil
}

// setupPostgres creates the database when missing and brings its schema to schemaName's
// newest version (or targetVersion, when set), as `temporal-sql-tool create-database`,
// `setup-schema -v 0.0` and `update-schema` do: from nothing the update applies every
// versioned step, on a current schema it applies none, on an older one the missing ones.
func setupPostgres(cfg *config.SQL, schemaName, targetVersion string, logger log.Logger) error {
	admin := *cfg
	// "" lets the plugin connect to its default database ("postgres", or "defaultdb"). Its
	// logger is quiet: it logs a failed connection with a stack trace, the cause is below.
	if err := sqltool.DoCreateDatabase(&admin, "", log.NewNoopLogger()); err != nil {
		return fmt.Errorf("devserver: create database %q on %s (is PostgreSQL running there, and may user %q create databases?): %w",
			cfg.DatabaseName, cfg.ConnectAddr, cfg.User, connectCause(cfg, err))
	}
	conn, err := sqltool.NewConnection(cfg, logger)
	if err != nil {
		return fmt.Errorf("devserver: connect to database %q on %s: %w", cfg.DatabaseName, cfg.ConnectAddr, err)
	}
	defer conn.Close()
	if err := schematool.NewSetupSchemaTask(conn, &schematool.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
		return fmt.Errorf("devserver: schema version tables in %q: %w", cfg.DatabaseName, err)
	}
	update := &schematool.UpdateConfig{DBName: cfg.DatabaseName, SchemaName: schemaName, TargetVersion: targetVersion}
	if err := schematool.NewUpdateSchemaTask(conn, update, logger).Run(); err != nil {
		return fmt.Errorf("devserver: update schema of %q to %s: %w", cfg.DatabaseName, schemaName, err)
	}
	return nil
}

// connectCause is the error of a plain connection to the "postgres" database, which names
// the cause (refused, unknown user, TLS), where the schema tool only reports that it found
// no usable connection; err when that connection works.
func connectCause(cfg *config.SQL, err error) error {
	probe := *cfg
	probe.DatabaseName = "postgres"
	sess, perr := session.NewSession(&probe, &driver.PGXDriver{}, resolver.NewNoopResolver())
	if perr != nil {
		return perr
	}
	sess.Close()
	return err
}

// postgresPersistence sets up both databases and settles the shard count.
func (o Options) postgresPersistence(ctx context.Context, logger log.Logger) (config.Persistence, error) {
	m, v, err := postgresConfigs(o.DatabaseURL)
	if err != nil {
		return config.Persistence{}, err
	}
	if err := setupPostgres(m, pgTemporalSchema, "", logger); err != nil {
		return config.Persistence{}, err
	}
	if err := setupPostgres(v, pgVisibilitySchema, "", logger); err != nil {
		return config.Persistence{}, err
	}
	stored, err := storedShardCount(ctx, m, logger)
	if err != nil {
		return config.Persistence{}, err
	}
	where := fmt.Sprintf("PostgreSQL database %q on %s", m.DatabaseName, m.ConnectAddr)
	shards, err := resolveShards(stored, int32(o.HistoryShards), defaultPostgresShards, where)
	if err != nil {
		return config.Persistence{}, err
	}
	return config.Persistence{
		DefaultStore: "postgres", VisibilityStore: "postgres-visibility", NumHistoryShards: shards,
		DataStores: map[string]config.DataStore{"postgres": {SQL: m}, "postgres-visibility": {SQL: v}},
	}, nil
}
