// Package pgtest gives tests PostgreSQL: a database of their own on the
// server BULWARK_TEST_POSTGRES names (by default the local one, user
// postgres, trust authentication), dropped when the test ends (Database),
// or a private cluster made with initdb, which the test can stop and start
// (StartCluster).
//
// Without a reachable server the tests that need one skip, with the reason;
// with CI=true they fail instead, so CI cannot pass by skipping them.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server tests use when BULWARK_TEST_POSTGRES is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerDSN returns the DSN of the test server's maintenance database.
func ServerDSN() string {
	if dsn := os.Getenv("BULWARK_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return DefaultDSN
}

// Database creates an empty database, bulwark_test_<random>, for the test
// and returns its DSN; it is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	server := ServerDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", redact(server), err)
		}
		t.Skipf("PostgreSQL not reachable at %s (set BULWARK_TEST_POSTGRES): %v", redact(server), err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	name := "bulwark_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return With(server, "dbname", name)
}

// Schema creates a schema in the database dsn names and returns a DSN
// whose connections work in it: a store of its own, cheaper than a
// database.
func Schema(t testing.TB, dsn, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	return With(dsn, "search_path", name)
}

// With returns dsn with one parameter set (dbname, search_path,
// pool_max_conns...), in either DSN form.
func With(dsn, key, value string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if key == "dbname" {
			u.Path = "/" + value
			return u.String()
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	// key=value form: a later setting wins.
	return dsn + " " + key + "=" + value
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxx")
		}
		return u.String()
	}
	return dsn
}
