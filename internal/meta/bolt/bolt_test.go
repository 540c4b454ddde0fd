package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/metatest"
)

func open(t *testing.T, dir string) meta.Store {
	s, err := Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) { metatest.Run(t, open) }

// TestGroupCommit shows that concurrent writers share commits.
func TestGroupCommit(t *testing.T) {
	s := open(t, t.TempDir()).(*Store)
	defer s.Close()
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				err := s.Update(context.Background(), func(tx meta.Tx) error {
					return tx.Put("g", []byte(fmt.Sprint(w, i)), []byte("v"))
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Transactions != 800 {
		t.Fatalf("transactions = %d, want 800", st.Transactions)
	}
	if st.Commits >= st.Transactions {
		t.Fatalf("no grouping: %d commits for %d transactions", st.Commits, st.Transactions)
	}
	t.Logf("%d transactions in %d commits", st.Transactions, st.Commits)
}

func BenchmarkUpdateParallel(b *testing.B) {
	s := open(&testing.T{}, b.TempDir())
	defer s.Close()
	b.SetParallelism(8)
	var n sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			k := fmt.Sprint(i)
			n.Unlock()
			_ = s.Update(context.Background(), func(tx meta.Tx) error {
				return tx.Put("b", []byte(k), make([]byte, 300))
			})
		}
	})
}
