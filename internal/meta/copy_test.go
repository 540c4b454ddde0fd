package meta_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/meta/pg"
	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
)

func openBolt(t *testing.T) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPG(t *testing.T) *pg.Store {
	t.Helper()
	s, err := pg.Open(context.Background(), pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fill writes keyspaces of every shape Copy meets: many keys over several
// batches, values of every size (empty, large), keys drawn from NextSeq,
// and a keyspace whose keys are all deleted but whose sequence has moved.
func fill(t *testing.T, s meta.Store) {
	t.Helper()
	ctx := context.Background()
	for i := range 25 {
		err := s.Update(ctx, func(tx meta.Tx) error {
			for j := range 100 {
				n := i*100 + j
				if err := tx.Put("objects", []byte(fmt.Sprintf("k/%05d", n)), []byte(strings.Repeat("v", n%300))); err != nil {
					return err
				}
			}
			seq, err := tx.NextSeq("feed")
			if err != nil {
				return err
			}
			if err := tx.Put("feed", []byte(fmt.Sprintf("%016x", seq)), []byte("change")); err != nil {
				return err
			}
			_, err = tx.NextSeq("emptied")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	err := s.Update(ctx, func(tx meta.Tx) error {
		if err := tx.Put("big", []byte("one"), make([]byte, 5<<20)); err != nil {
			return err
		}
		if err := tx.Put("empty-value", []byte("k"), nil); err != nil {
			return err
		}
		if err := tx.Put("bin\x01space", []byte{0, 0xff}, []byte{1}); err != nil {
			return err
		}
		// Trimmed feed: the first records go, their numbers must not come back.
		for i := 1; i <= 5; i++ {
			if err := tx.Delete("feed", []byte(fmt.Sprintf("%016x", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDumperSpacesAndSeq(t *testing.T) {
	for name, open := range map[string]func(*testing.T) meta.Dumper{
		"bolt": func(t *testing.T) meta.Dumper { return openBolt(t) },
		"pg":   func(t *testing.T) meta.Dumper { return openPG(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			fill(t, s)
			spaces, err := s.Spaces(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"big", "bin\x01space", "emptied", "empty-value", "feed", "objects"}
			if !slices.Equal(spaces, want) {
				t.Fatalf("Spaces = %q, want %q", spaces, want)
			}
			for space, n := range map[string]uint64{"feed": 25, "emptied": 25, "objects": 0} {
				if got, err := s.Seq(ctx, space); err != nil || got != n {
					t.Fatalf("Seq(%s) = %d, %v; want %d", space, got, err, n)
				}
			}
			if err := s.SetSeq(ctx, "feed", 20); err == nil {
				t.Fatal("SetSeq moved a sequence back")
			}
			if err := s.SetSeq(ctx, "fresh", 1000); err != nil {
				t.Fatal(err)
			}
			if err := s.SetSeq(ctx, "fresh", 1000); err != nil {
				t.Fatalf("SetSeq to the same position: %v", err)
			}
			var next uint64
			if err := s.Update(ctx, func(tx meta.Tx) error { next, err = tx.NextSeq("fresh"); return err }); err != nil || next != 1001 {
				t.Fatalf("NextSeq after SetSeq(1000) = %d, %v", next, err)
			}
			if spaces, _ := s.Spaces(ctx); !slices.Contains(spaces, "fresh") {
				t.Fatalf("a keyspace with only a sequence is not listed: %q", spaces)
			}
		})
	}
}

// TestCopyBoltToPostgres copies in small batches, checks that Compare
// finds no difference and that the target's sequences go on above the
// source's, then plants one difference of each kind and checks that
// Compare reports each.
func TestCopyBoltToPostgres(t *testing.T) {
	ctx := context.Background()
	src, dst := openBolt(t), openPG(t)
	fill(t, src)
	batches := 0
	st, err := meta.Copy(ctx, dst, src, meta.CopyOptions{Source: "src", BatchKeys: 300, Progress: func(string, int64) { batches++ }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 2500+20+3 || st.Spaces != 6 || batches < 2500/300 {
		t.Fatalf("copy: %+v in %d batches", st, batches)
	}
	if src, err := meta.Migrating(ctx, dst); err != nil || src != "" {
		t.Fatalf("finished copy still marked: %q, %v", src, err)
	}
	if diffs := compare(t, src, dst); len(diffs) != 0 {
		t.Fatalf("differences after the copy: %q", diffs)
	}
	var seq uint64
	if err := dst.Update(ctx, func(tx meta.Tx) error { seq, err = tx.NextSeq("feed"); return err }); err != nil || seq != 26 {
		t.Fatalf("NextSeq(feed) on the target = %d, %v; want 26", seq, err)
	}
	if _, err := meta.Copy(ctx, dst, src, meta.CopyOptions{Source: "src"}); !errors.Is(err, meta.ErrNotEmpty) {
		t.Fatalf("copy into a non-empty target: %v", err)
	}

	// Plant differences in the target.
	err = dst.Update(ctx, func(tx meta.Tx) error {
		return errors.Join(
			tx.Delete("objects", []byte("k/00007")),
			tx.Put("objects", []byte("k/00100"), []byte("changed")),
			tx.Put("objects", []byte("k/zzz"), []byte("extra")),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SetSeq(ctx, "emptied", 500); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"emptied: sequence at 25 in the target, below the source's 500",
		"feed: ", // the target drew 26 above: not a difference by itself
		"objects/k/00007: missing in the target",
		"objects/k/00100: value differs",
		"objects/k/zzz: only in the target",
	}
	got := compare(t, src, dst)
	want = slices.DeleteFunc(want, func(s string) bool { return s == "feed: " })
	if !slices.Equal(got, want) {
		t.Fatalf("differences:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func compare(t *testing.T, src, dst meta.Dumper) []string {
	t.Helper()
	var out []string
	counts, err := meta.Compare(context.Background(), src, dst, func(d meta.Difference) {
		if d.Key == nil {
			out = append(out, d.Space+": "+d.What)
		} else {
			out = append(out, d.Space+"/"+string(d.Key)+": "+d.What)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		if c.Differs() {
			n++
		}
	}
	if (n == 0) != (len(out) == 0) {
		t.Fatalf("counts say %d keyspaces differ, %d differences reported", n, len(out))
	}
	return out
}

// TestCopyResumes interrupts a copy after a few batches (its ctx ends)
// and runs it again: it continues from its progress record, refuses
// another source, and ends with a target equal to the source.
func TestCopyResumes(t *testing.T) {
	src, dst := openBolt(t), openPG(t)
	fill(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	batches := 0
	_, err := meta.Copy(ctx, dst, src, meta.CopyOptions{Source: "src", BatchKeys: 200, Progress: func(string, int64) {
		if batches++; batches == 4 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted copy: %v", err)
	}
	bg := context.Background()
	if from, err := meta.Migrating(bg, dst); err != nil || from != "src" {
		t.Fatalf("Migrating after an interrupted copy = %q, %v", from, err)
	}
	if _, err := meta.Copy(bg, dst, src, meta.CopyOptions{Source: "other"}); err == nil {
		t.Fatal("an unfinished copy of one source resumed from another")
	}
	st, err := meta.Copy(bg, dst, src, meta.CopyOptions{Source: "src", BatchKeys: 200})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Resumed || st.Keys >= 2523 || st.Keys < 2523-4*200 {
		t.Fatalf("resumed copy: %+v", st)
	}
	if diffs := compare(t, src, dst); len(diffs) != 0 {
		t.Fatalf("differences after a resumed copy: %q", diffs)
	}
}
