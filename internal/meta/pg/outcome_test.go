package pg

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/meta"
)

// TestCommitOutcomeUnknown loses the connection after the server has
// committed and before its answer arrives: Update cannot know, says so
// with meta.ErrUnknownOutcome, and the write is there. (Lost before the
// server commits, the same error stands for a write that is not: the
// caller must allow for both.)
func TestCommitOutcomeUnknown(t *testing.T) {
	s := opener(t, nil)(t, t.TempDir()).(*Store)
	defer s.Close()
	ctx := context.Background()
	s.commitSent = func(conn *pgx.Conn) {
		s.commitSent = nil
		waitCommitted(t, conn)
		conn.PgConn().Conn().Close() // the answer is lost on the way
	}
	err := s.Update(ctx, func(tx meta.Tx) error { return tx.Put("u", []byte("k"), []byte("v")) })
	if !errors.Is(err, meta.ErrUnknownOutcome) {
		t.Fatalf("update whose commit answer was lost: %v, want ErrUnknownOutcome", err)
	}
	t.Logf("update: %v", err)
	var v []byte
	err = s.View(ctx, func(tx meta.Tx) error { v = tx.Get("u", []byte("k")); return nil })
	if err != nil || string(v) != "v" {
		t.Fatalf("after the lost answer: %q, %v; the server had committed", v, err)
	}
}

// waitCommitted waits until the backend serving conn has finished its
// transaction, asking from a connection of its own.
func waitCommitted(t *testing.T, conn *pgx.Conn) {
	ctx := context.Background()
	other, err := pgx.ConnectConfig(ctx, conn.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for {
		var state string
		err := other.QueryRow(ctx, "SELECT state FROM pg_stat_activity WHERE pid = $1", conn.PgConn().PID()).Scan(&state)
		if err != nil {
			t.Fatal(err)
		}
		if state == "idle" {
			return
		}
	}
}
