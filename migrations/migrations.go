// Package migrations holds the database schema as numbered SQL files,
// embedded in the binary and applied with tern
// (github.com/jackc/tern/v2/migrate). Each file's up part comes first, then
// the line "---- create above / drop below ----", then its down part. Every
// migration runs in its own transaction and records the schema version in
// the schema_version table; tern holds an advisory lock meanwhile, so
// workers starting together migrate once.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable records the applied schema version.
const VersionTable = "schema_version"

// FS returns the embedded migration files.
func FS() fs.FS { return files }

func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrations: prepare: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return nil, fmt.Errorf("migrations: load: %w", err)
	}
	return m, nil
}

// Apply brings the schema to the latest version and reports the versions
// before and after.
func Apply(ctx context.Context, conn *pgx.Conn) (from, to int32, err error) {
	return ApplyTo(ctx, conn, -1)
}

// ApplyTo brings the schema to version (up or down); -1 means the latest.
func ApplyTo(ctx context.Context, conn *pgx.Conn, version int32) (from, to int32, err error) {
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return 0, 0, err
	}
	if from, err = m.GetCurrentVersion(ctx); err != nil {
		return 0, 0, fmt.Errorf("migrations: read version: %w", err)
	}
	if version < 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		return from, 0, fmt.Errorf("migrations: apply: %w", err)
	}
	if to, err = m.GetCurrentVersion(ctx); err != nil {
		return from, 0, fmt.Errorf("migrations: read version: %w", err)
	}
	return from, to, nil
}

// Latest is the newest schema version the embedded files define.
func Latest() (int32, error) {
	names, err := migrate.FindMigrations(files)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	return int32(len(names)), nil
}
