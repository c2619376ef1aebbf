#!/bin/sh
# Creates or upgrades Temporal's two PostgreSQL databases with Temporal's own schema tool,
# temporal-sql-tool of the admin-tools image (same version as the server). It connects with
# SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD from docker-compose.yml.
# Safe on every `up`: create ignores an existing database, setup-schema -v 0.0 leaves an
# already versioned schema alone, and update-schema applies only the versions not yet applied.
set -eu

schema=/etc/temporal/schema/postgresql/v12
for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  dir=$schema/${pair#*:}/versioned
  echo "temporal-schema: $db (schema $dir)"
  temporal-sql-tool --db "$db" create
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "$dir"
done
echo "temporal-schema: done"
