#!/bin/sh
# Creates the Temporal server's two databases on PostgreSQL and brings their
# schemas to the versions the pinned server needs (the schemas are embedded
# in temporal-sql-tool). Safe to run again: existing databases are kept and
# only missing schema versions are applied, so it runs before every server
# upgrade too.
#
# It is the schema job of docker-compose.yml and k8s/temporal.yaml (image
# temporalio/admin-tools), and the integration tests' cluster runs this very
# file (internal/localcluster).
#
# Environment (temporal-sql-tool reads the SQL_* variables itself):
#   SQL_HOST, SQL_PORT (5432), SQL_USER, SQL_PASSWORD   the PostgreSQL server
#   SQL_PLUGIN                postgres12
#   TEMPORAL_DB               temporal
#   TEMPORAL_VISIBILITY_DB    temporal_visibility
#   TEMPORAL_SQL_TOOL         temporal-sql-tool
set -eu
tool=${TEMPORAL_SQL_TOOL:-temporal-sql-tool}
SQL_PLUGIN=${SQL_PLUGIN:-postgres12}
SQL_PORT=${SQL_PORT:-5432}
export SQL_PLUGIN SQL_PORT

schema() {
  db=$1
  versioned=$2
  echo "temporal-schema: database $db, schema $versioned"
  "$tool" --db "$db" create-database
  "$tool" --db "$db" setup-schema -v 0.0
  "$tool" --db "$db" update-schema -s "$versioned"
}

schema "${TEMPORAL_DB:-temporal}" postgresql/v12/temporal
schema "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}" postgresql/v12/visibility
echo "temporal-schema: done"
