package localpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDatabaseURLVar names the variable that points tests at a server.
const TestDatabaseURLVar = "TEST_DATABASE_URL"

// MainWithPostgres runs a package's tests with a PostgreSQL server: the one
// TEST_DATABASE_URL names, or else a throwaway cluster started here and
// stopped afterwards. When PostgreSQL cannot start, the tests fail (they are
// never skipped). Use it as: func TestMain(m *testing.M) { os.Exit(localpg.MainWithPostgres(m)) }
func MainWithPostgres(m *testing.M) int {
	if os.Getenv(TestDatabaseURLVar) != "" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := Start(ctx, Options{Fast: true})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start PostgreSQL for the tests: %v\n", err)
		return 1
	}
	defer func() { _ = c.Close(context.Background()) }()
	if err := os.Setenv(TestDatabaseURLVar, c.URL("postgres")); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	return m.Run()
}

// NewDatabase creates a fresh database on TEST_DATABASE_URL's server for
// one test, drops it when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv(TestDatabaseURLVar)
	if base == "" {
		t.Fatalf("%s is not set: run the package's tests through localpg.MainWithPostgres", TestDatabaseURLVar)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", TestDatabaseURLVar, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", TestDatabaseURLVar, err)
	}
	u.Path = "/" + name
	return u.String()
}
