package metatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
)

// testOwnWrites checks that a transaction reads what it wrote, through Get
// and through iterators, before it commits.
func testOwnWrites(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	put(t, s, "o", "b", "old")
	err := s.Update(context.Background(), func(tx meta.Tx) error {
		for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
			if err := tx.Put("o", []byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		if v := tx.Get("o", []byte("b")); string(v) != "2" {
			return fmt.Errorf("own overwrite reads %q", v)
		}
		if err := tx.Delete("o", []byte("c")); err != nil {
			return err
		}
		var got []string
		it := tx.Iter("o")
		for k, v := it.First(); k != nil; k, v = it.Next() {
			got = append(got, string(k)+"="+string(v))
		}
		if want := []string{"a=1", "b=2"}; !slices.Equal(got, want) {
			return fmt.Errorf("own writes iterate as %q, want %q", got, want)
		}
		if k, _ := tx.Iter("fresh-space").First(); k != nil {
			return fmt.Errorf("empty space iterates %q", k)
		}
		if err := tx.Put("fresh-space", []byte("k"), []byte("v")); err != nil {
			return err
		}
		if k, _ := tx.Iter("fresh-space").Last(); string(k) != "k" {
			return fmt.Errorf("space created in the transaction iterates %q", k)
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testLargeIteration walks a keyspace far larger than any page an
// implementation fetches at once, in both directions and across direction
// changes, and deletes while iterating, as feed trimming does.
func testLargeIteration(t *testing.T, open Opener) {
	s, _ := openStore(t, open)
	ctx := context.Background()
	const n = 3000
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%05d", i)) }
	err := s.Update(ctx, func(tx meta.Tx) error {
		for i := range n {
			if err := tx.Put("big", key(i), []byte(fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter("big")
		i := 0
		for k, v := it.First(); k != nil; k, v = it.Next() {
			if !bytes.Equal(k, key(i)) || string(v) != fmt.Sprint(i) {
				return fmt.Errorf("forward step %d: %q=%q", i, k, v)
			}
			i++
		}
		if i != n {
			return fmt.Errorf("forward walk saw %d keys, want %d", i, n)
		}
		i = n - 1
		for k, _ := it.Last(); k != nil; k, _ = it.Prev() {
			if !bytes.Equal(k, key(i)) {
				return fmt.Errorf("backward step at %d: %q", i, k)
			}
			i--
		}
		if i != -1 {
			return fmt.Errorf("backward walk stopped at %d", i)
		}
		// Seek, run forward over several pages, then back past the start.
		k, _ := it.Seek([]byte("k01000x"))
		i = 1001
		for step := 0; step < 700; step++ {
			if !bytes.Equal(k, key(i)) {
				return fmt.Errorf("after seek, forward step %d: %q, want %q", step, k, key(i))
			}
			k, _ = it.Next()
			i++
		}
		for j := i - 1; j > 400; j-- {
			if k, _ = it.Prev(); !bytes.Equal(k, key(j)) {
				return fmt.Errorf("turning back: %q, want %q", k, key(j))
			}
		}
		if k, _ := it.Seek(key(n - 2)); !bytes.Equal(k, key(n-2)) {
			return fmt.Errorf("seek near the end: %q", k)
		}
		if k, _ := it.Next(); !bytes.Equal(k, key(n-1)) {
			return fmt.Errorf("last step: %q", k)
		}
		if k, _ := it.Next(); k != nil {
			return fmt.Errorf("past the end: %q", k)
		}
		return tx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	// Delete every even key while walking, then read what is left.
	err = s.Update(ctx, func(tx meta.Tx) error {
		it := tx.Iter("big")
		seen := 0
		for k, _ := it.First(); k != nil; k, _ = it.Next() {
			seen++
			var i int
			if _, err := fmt.Sscanf(string(k), "k%05d", &i); err != nil {
				return err
			}
			if i%2 == 0 {
				if err := tx.Delete("big", k); err != nil {
					return err
				}
			}
		}
		if seen != n {
			return fmt.Errorf("deleting walk saw %d keys, want %d", seen, n)
		}
		if k, _ := tx.Iter("big").First(); !bytes.Equal(k, key(1)) {
			return fmt.Errorf("after deletes, first key %q", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter("big")
		i := 1
		for k, _ := it.First(); k != nil; k, _ = it.Next() {
			if !bytes.Equal(k, key(i)) {
				return fmt.Errorf("after deletes: %q, want %q", k, key(i))
			}
			i += 2
		}
		if i != n+1 {
			return fmt.Errorf("after deletes the walk stopped before %q", key(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testConditionalInsert races writers that each insert a key only when the
// keyspace is empty, as creating a uniquely named bucket does: exactly one
// may win. Snapshot isolation without serializability lets several in
// (write skew), since each inserts a different key.
func testConditionalInsert(t *testing.T, ss []meta.Store) {
	s := ss[0]
	const rounds, writers = 5, 8
	for r := range rounds {
		space := fmt.Sprintf("cond%d", r)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := ss[w%len(ss)].Update(context.Background(), func(tx meta.Tx) error {
					if k, _ := tx.Iter(space).First(); k != nil {
						return nil
					}
					return tx.Put(space, []byte(fmt.Sprint(w)), []byte("won"))
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		n := 0
		err := s.View(context.Background(), func(tx meta.Tx) error {
			it := tx.Iter(space)
			for k, _ := it.First(); k != nil; k, _ = it.Next() {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("round %d: %d writers inserted into an empty keyspace, want 1 (write skew)", r, n)
		}
	}
}

// testSnapshotView moves amounts between accounts while readers check that
// the total never changes: a View sees all of a transaction or none of it.
func testSnapshotView(t *testing.T, ss []meta.Store) {
	s := ss[0]
	ctx := context.Background()
	const accounts, total = 4, 1000
	err := s.Update(ctx, func(tx meta.Tx) error {
		for a := range accounts {
			v := 0
			if a == 0 {
				v = total
			}
			if err := tx.Put("bank", []byte{byte(a)}, binary.BigEndian.AppendUint64(nil, uint64(v))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				from, to := byte((w+i)%accounts), byte((w+i+1)%accounts)
				err := ss[(w+i)%len(ss)].Update(ctx, func(tx meta.Tx) error {
					a := binary.BigEndian.Uint64(tx.Get("bank", []byte{from}))
					b := binary.BigEndian.Uint64(tx.Get("bank", []byte{to}))
					m := min(a, uint64(1+i%7))
					if err := tx.Put("bank", []byte{from}, binary.BigEndian.AppendUint64(nil, a-m)); err != nil {
						return err
					}
					return tx.Put("bank", []byte{to}, binary.BigEndian.AppendUint64(nil, b+m))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()
	reads := 0
	for !done.Load() || reads == 0 {
		reads++
		err := ss[reads%len(ss)].View(ctx, func(tx meta.Tx) error {
			var byGet, byIter uint64
			for a := range accounts {
				byGet += binary.BigEndian.Uint64(tx.Get("bank", []byte{byte(a)}))
			}
			it := tx.Iter("bank")
			for k, v := it.Last(); k != nil; k, v = it.Prev() {
				byIter += binary.BigEndian.Uint64(v)
			}
			if byGet != total || byIter != total {
				return fmt.Errorf("a snapshot holds %d by Get and %d by iteration, want %d", byGet, byIter, total)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

// testFeedOrder appends to a feed from concurrent writers while a reader
// follows it with a cursor, and fails when a record commits below a
// position the reader has passed: the record a consumer would never send.
func testFeedOrder(t *testing.T, ss []meta.Store) {
	skipped, err := CheckFeedOrder(context.Background(), ss, 8, 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) > 0 {
		t.Fatalf("records committed below the reader's cursor, never seen by it: %v", skipped)
	}
}

// CheckFeedOrder runs writers goroutines, each appending each records to
// the keyspace "feed" in transactions that take their key from NextSeq and
// write a second record, while one reader repeatedly reads every record
// above its cursor and moves the cursor to the highest it saw. The writers
// take turns over the stores ss, gateways over one database. Once they are
// done it returns the records the reader skipped: those that committed
// below its cursor after it had passed them. A store that keeps meta's
// ordering guarantee skips none.
func CheckFeedOrder(ctx context.Context, ss []meta.Store, writers, each int) (skipped []uint64, err error) {
	s := ss[0]
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := ss[(w+i)%len(ss)].Update(ctx, func(tx meta.Tx) error {
					n, err := tx.NextSeq("feed")
					if err != nil {
						return err
					}
					k := binary.BigEndian.AppendUint64(nil, n)
					if err := tx.Put("feed", k, []byte("change")); err != nil {
						return err
					}
					return tx.Put("feed-versions", k, []byte("version"))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()
	seen := map[uint64]bool{}
	var cursor uint64
	for !done.Load() {
		err := s.View(ctx, func(tx meta.Tx) error {
			it := tx.Iter("feed")
			for k, _ := it.Seek(binary.BigEndian.AppendUint64(nil, cursor+1)); k != nil; k, _ = it.Next() {
				n := binary.BigEndian.Uint64(k)
				seen[n] = true
				cursor = max(cursor, n)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("follow the feed: %w", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, fmt.Errorf("append to the feed: %w", err)
	}
	count := 0
	err = s.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter("feed")
		for k, _ := it.First(); k != nil; k, _ = it.Next() {
			count++
			if n := binary.BigEndian.Uint64(k); n <= cursor && !seen[n] {
				skipped = append(skipped, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the feed: %w", err)
	}
	if count != writers*each {
		return skipped, fmt.Errorf("feed holds %d records, want %d", count, writers*each)
	}
	return skipped, nil
}
