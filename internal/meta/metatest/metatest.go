// Package metatest is the conformance suite every meta.Store implementation
// passes: ordering, atomicity, isolation under concurrent writers (lost
// updates, write skew, consistent snapshots), the change feed's ordering
// under concurrent appenders, cancellation, sticky read errors when the store
// can be made to fail, and durability across reopen. It checks the contract
// written in package meta; a case here stands for something the rest of
// Bulwark relies on.
package metatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
)

// Opener opens the store kept in dir, creating it when absent. Opening the
// same dir again after Close must show everything committed before.
type Opener func(t *testing.T, dir string) meta.Store

// Options describe what more the suite can do with an implementation.
type Options struct {
	// Shared says that a dir can be open in several stores at once, as
	// several gateways share one database: the concurrency cases then
	// spread their transactions over Gateways stores.
	Shared bool
	// Disconnect cuts the connection that carries tx, as a database
	// restart or a network failure would, and returns once it is cut: the
	// transaction's next round trip to the store fails. Nil skips the
	// cases that need it.
	Disconnect func(t *testing.T, tx meta.Tx)
}

// Gateways is the number of stores the concurrency cases open on one dir
// when the implementation allows it (Options.Shared).
const Gateways = 3

// Run runs the conformance suite against the implementation open returns.
func Run(t *testing.T, open Opener) { RunWith(t, open, Options{}) }

// RunWith runs the conformance suite with opts.
func RunWith(t *testing.T, open Opener, opts Options) {

	shared := func(fn func(*testing.T, []meta.Store)) func(*testing.T, Opener) {
		return func(t *testing.T, open Opener) { fn(t, openGateways(t, open, opts.Shared)) }
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"OwnWrites", testOwnWrites},
		{"LargeIteration", testLargeIteration},
		{"ConditionalInsert", shared(testConditionalInsert)},
		{"SnapshotView", shared(testSnapshotView)},
		{"FeedOrder", shared(testFeedOrder)},
		{"CancelBefore", testCancelBefore},
		{"CancelDuring", testCancelDuring},
		{"GetPutDelete", testGetPutDelete},
		{"IterationOrder", testIterationOrder},
		{"RollbackOnError", testRollbackOnError},
		{"ReadOnlyView", testReadOnlyView},
		{"ConcurrentIncrements", shared(testConcurrentIncrements)},
		{"FailingNeighbour", testFailingNeighbour},
		{"Sequence", testSequence},
		{"Reopen", testReopen},
		{"Panic", testPanic},
		{"Closed", testClosed},
	}
	if opts.Disconnect != nil {
		tests = append(tests, []struct {
			name string
			fn   func(*testing.T, Opener)
		}{
			{"DisconnectInUpdate", func(t *testing.T, o Opener) { testDisconnectInUpdate(t, o, opts.Disconnect) }},
			{"DisconnectInView", func(t *testing.T, o Opener) { testDisconnectInView(t, o, opts.Disconnect) }},
		}...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// openGateways opens Gateways stores on one dir when shared, else one.
func openGateways(t *testing.T, open Opener, shared bool) []meta.Store {
	dir := t.TempDir()
	n := 1
	if shared {
		n = Gateways
	}
	var ss []meta.Store
	for range n {
		s := open(t, dir)
		t.Cleanup(func() { _ = s.Close() })
		ss = append(ss, s)
	}
	return ss
}

func openStore(t *testing.T, open Opener) (meta.Store, string) {
	dir := t.TempDir()
	s := open(t, dir)
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

func get(t *testing.T, s meta.Store, space, key string) []byte {
	t.Helper()
	var out []byte
	err := s.View(context.Background(), func(tx meta.Tx) error {
		if v := tx.Get(space, []byte(key)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	return out
}

func put(t *testing.T, s meta.Store, space, key, value string) {
	t.Helper()
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		return tx.Put(space, []byte(key), []byte(value))
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
}

func testGetPutDelete(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	if v := get(t, s, "a", "k"); v != nil {
		t.Fatalf("missing key in missing space: got %q", v)
	}
	put(t, s, "a", "k", "v1")
	put(t, s, "a", "k", "v2")
	put(t, s, "b", "k", "other")
	if v := get(t, s, "a", "k"); string(v) != "v2" {
		t.Fatalf("get a/k = %q, want v2", v)
	}
	if v := get(t, s, "b", "k"); string(v) != "other" {
		t.Fatalf("spaces are not separate: b/k = %q", v)
	}
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		if err := tx.Delete("a", []byte("k")); err != nil {
			return err
		}
		if err := tx.Delete("a", []byte("never-there")); err != nil {
			return err
		}
		return tx.Delete("no-such-space", []byte("k"))
	})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if v := get(t, s, "a", "k"); v != nil {
		t.Fatalf("deleted key still there: %q", v)
	}
}

func testIterationOrder(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	keys := []string{"b", "a\x00z", "a", "a\xff", "ab", "c/d", "c/"}
	for _, k := range keys {
		put(t, s, "x", k, "v:"+k)
	}
	put(t, s, "y", "0", "other space")
	want := []string{"a", "a\x00z", "ab", "a\xff", "b", "c/", "c/d"}
	err := s.View(context.Background(), func(tx meta.Tx) error {
		it := tx.Iter("x")
		var got []string
		for k, v := it.First(); k != nil; k, v = it.Next() {
			if string(v) != "v:"+string(k) {
				return fmt.Errorf("value of %q = %q", k, v)
			}
			got = append(got, string(k))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("forward order %q, want %q", got, want)
		}
		got = got[:0]
		for k, _ := it.Last(); k != nil; k, _ = it.Prev() {
			got = append(got, string(k))
		}
		if len(got) != len(want) || got[0] != want[len(want)-1] {
			return fmt.Errorf("backward order %q", got)
		}
		if k, _ := it.Seek([]byte("a\x01")); string(k) != "ab" {
			return fmt.Errorf("seek a\\x01 landed on %q", k)
		}
		if k, _ := it.Seek([]byte("c/")); string(k) != "c/" {
			return fmt.Errorf("seek exact landed on %q", k)
		}
		if k, _ := it.Seek([]byte("d")); k != nil {
			return fmt.Errorf("seek past end landed on %q", k)
		}
		if k, _ := tx.Iter("missing").First(); k != nil {
			return fmt.Errorf("missing space iterates %q", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var errBoom = errors.New("boom")

func testRollbackOnError(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	put(t, s, "a", "keep", "1")
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		if err := tx.Put("a", []byte("keep"), []byte("2")); err != nil {
			return err
		}
		if err := tx.Put("a", []byte("new"), []byte("x")); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("update returned %v, want the function's error", err)
	}
	if v := get(t, s, "a", "keep"); string(v) != "1" {
		t.Fatalf("rolled-back write visible: %q", v)
	}
	if v := get(t, s, "a", "new"); v != nil {
		t.Fatalf("rolled-back insert visible: %q", v)
	}
}

func testReadOnlyView(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	err := s.View(context.Background(), func(tx meta.Tx) error {
		return tx.Put("a", []byte("k"), []byte("v"))
	})
	if err == nil {
		t.Fatal("put inside View succeeded")
	}
}

// testConcurrentIncrements checks serializability under group commit: every
// read-modify-write of one counter must see the previous one.
func testConcurrentIncrements(t *testing.T, ss []meta.Store) {
	s := ss[0]
	const writers, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := ss[(w+i)%len(ss)].Update(context.Background(), func(tx meta.Tx) error {
					var n uint64
					if v := tx.Get("c", []byte("n")); v != nil {
						n = binary.BigEndian.Uint64(v)
					}
					return tx.Put("c", []byte("n"), binary.BigEndian.AppendUint64(nil, n+1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := binary.BigEndian.Uint64(get(t, s, "c", "n")); n != writers*each {
		t.Fatalf("counter = %d, want %d (lost updates)", n, writers*each)
	}
}

// testFailingNeighbour checks that one failing transaction grouped with others
// neither loses their writes nor leaks its own.
func testFailingNeighbour(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("k%02d", i))
			err := s.Update(context.Background(), func(tx meta.Tx) error {
				if err := tx.Put("f", key, []byte("v")); err != nil {
					return err
				}
				if i%5 == 0 {
					return errBoom
				}
				return nil
			})
			if (i%5 == 0) != errors.Is(err, errBoom) {
				t.Errorf("update %d returned %v", i, err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 64; i++ {
		v := get(t, s, "f", fmt.Sprintf("k%02d", i))
		if (i%5 == 0) != (v == nil) {
			t.Errorf("key k%02d present=%v", i, v != nil)
		}
	}
}

func testSequence(t *testing.T, open Opener) {
	s, dir := openStore(t, open)
	var got []uint64
	for i := 0; i < 3; i++ {
		err := s.Update(context.Background(), func(tx meta.Tx) error {
			n, err := tx.NextSeq("feed")
			if err != nil {
				return err
			}
			got = append(got, n)
			return tx.Put("feed", binary.BigEndian.AppendUint64(nil, n), []byte("x"))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A rolled-back transaction may or may not consume a number, but never
	// hands one out twice.
	_ = s.Update(context.Background(), func(tx meta.Tx) error {
		_, _ = tx.NextSeq("feed")
		return errBoom
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		n, err := tx.NextSeq("feed")
		got = append(got, n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("sequence not increasing: %v", got)
		}
	}
	if got[0] != 1 {
		t.Fatalf("sequence starts at %d, want 1", got[0])
	}
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < 100; i++ {
		put(t, s, "r", fmt.Sprintf("%03d", i), fmt.Sprint(i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	for i := 0; i < 100; i++ {
		if v := get(t, s, "r", fmt.Sprintf("%03d", i)); string(v) != fmt.Sprint(i) {
			t.Fatalf("after reopen key %03d = %q", i, v)
		}
	}
}

func testPanic(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	err := s.Update(context.Background(), func(tx meta.Tx) error { panic("bad request") })
	if err == nil {
		t.Fatal("panicking transaction returned nil")
	}
	put(t, s, "a", "after", "ok")
	if v := get(t, s, "a", "after"); string(v) != "ok" {
		t.Fatal("store unusable after a panicking transaction")
	}
}

func testClosed(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.Update(context.Background(), func(tx meta.Tx) error { return nil })
	if !errors.Is(err, meta.ErrClosed) {
		t.Fatalf("update after close: %v, want ErrClosed", err)
	}
	err = s.View(context.Background(), func(tx meta.Tx) error { return nil })
	if !errors.Is(err, meta.ErrClosed) {
		t.Fatalf("view after close: %v, want ErrClosed", err)
	}
}
