package metatest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
)

// testCancelBefore checks that an ended ctx runs nothing.
func testCancelBefore(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx meta.Tx) error { return tx.Put("c", []byte("k"), []byte("v")) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("update with a cancelled ctx: %v, want context.Canceled", err)
	}
	err = s.View(ctx, func(tx meta.Tx) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("view with a cancelled ctx: %v, want context.Canceled", err)
	}
	if v := get(t, s, "c", "k"); v != nil {
		t.Fatalf("update with a cancelled ctx committed %q", v)
	}
}

// testCancelDuring cancels ctx while fn runs: the transaction ends with
// ctx's error and commits nothing, even when fn ignores the failures and
// returns nil.
func testCancelDuring(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	put(t, s, "c", "keep", "1")
	ctx, cancel := context.WithCancel(context.Background())
	err := s.Update(ctx, func(tx meta.Tx) error {
		_ = tx.Put("c", []byte("keep"), []byte("2"))
		_ = tx.Put("c", []byte("before"), []byte("v"))
		cancel()
		_ = tx.Put("c", []byte("after"), []byte("v"))
		_ = tx.Get("c", []byte("keep"))
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("update cancelled while it ran: %v, want context.Canceled", err)
	}
	for k, want := range map[string]string{"keep": "1", "before": "", "after": ""} {
		if v := get(t, s, "c", k); string(v) != want {
			t.Fatalf("cancelled update left %s = %q, want %q", k, v, want)
		}
	}
	ctx, cancel = context.WithCancel(context.Background())
	err = s.View(ctx, func(tx meta.Tx) error {
		cancel()
		_ = tx.Get("c", []byte("keep"))
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("view cancelled while it ran: %v, want context.Canceled", err)
	}
	put(t, s, "c", "later", "ok") // the store is still usable
}

var errNotFound = errors.New("not found")

// testDisconnectInUpdate cuts the store away in the middle of an Update
// whose fn ignores every failure and returns nil: Update must fail, and
// nothing of it, before or after the cut, may be kept.
func testDisconnectInUpdate(t *testing.T, open Opener, disconnect func(*testing.T, meta.Tx)) {
	s, _ := openStore(t, open)
	put(t, s, "d", "keep", "1")
	var readErr error
	calls := 0
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		calls++
		_ = tx.Put("d", []byte("keep"), []byte("2"))
		_ = tx.Put("d", []byte("before"), []byte("v"))
		if calls == 1 {
			disconnect(t, tx)
		}
		if v := tx.Get("d", []byte("keep")); v != nil {
			return fmt.Errorf("read after the cut returned %q", v)
		}
		readErr = tx.Err()
		_ = tx.Put("d", []byte("after"), []byte("v"))
		return nil
	})
	if calls > 1 {
		t.Skip("the store retried the transaction on a new connection; no failure to observe")
	}
	if err == nil {
		t.Fatal("update whose connection was cut returned nil")
	}
	if readErr == nil {
		t.Fatal("Tx.Err was nil after a failed read")
	}
	t.Logf("update after the cut: %v", err)
	for k, want := range map[string]string{"keep": "1", "before": "", "after": ""} {
		if v := get(t, s, "d", k); string(v) != want {
			t.Fatalf("cut update left %s = %q, want %q", k, v, want)
		}
	}
	put(t, s, "d", "later", "ok")
	if v := get(t, s, "d", "later"); string(v) != "ok" {
		t.Fatal("store unusable after a cut connection")
	}
}

// testDisconnectInView cuts the store away while a View iterates, with an
// fn that turns the short read into an answer of its own: View must return
// the store's error, not that answer.
func testDisconnectInView(t *testing.T, open Opener, disconnect func(*testing.T, meta.Tx)) {
	s, _ := openStore(t, open)
	const n = 500
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		for i := range n {
			if err := tx.Put("d", []byte(fmt.Sprintf("%04d", i)), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = s.View(context.Background(), func(tx meta.Tx) error {
		it := tx.Iter("d")
		k, _ := it.First()
		disconnect(t, tx)
		for ; k != nil; k, _ = it.Next() {
			seen++
		}
		if tx.Err() == nil {
			return fmt.Errorf("iteration ended after %d keys with no error recorded", seen)
		}
		if tx.Get("d", []byte("0000")) != nil {
			return errors.New("a read after a recorded error returned a value")
		}
		return errNotFound // a decision made on a short read
	})
	if err == nil || errors.Is(err, errNotFound) {
		t.Fatalf("view whose connection was cut after %d of %d keys returned %v, want the store's error", seen, n, err)
	}
	if seen >= n {
		t.Fatalf("iteration saw all %d keys after the cut", seen)
	}
	t.Logf("view after the cut (%d keys read): %v", seen, err)
}
