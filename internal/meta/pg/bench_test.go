package pg

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
)

// BenchmarkStores measures durable Update throughput with 16 concurrent
// writers, each transaction shaped like a PUT: a version record and a
// change feed record numbered by NextSeq; on bbolt and PostgreSQL in the
// same run, and reports PostgreSQL's throughput as a fraction of bbolt's.
// "postgres-nofeed" writes the version record alone, to show what ordering
// the feed costs.
//
//	go test -run '^$' -bench Stores -benchtime 3000x ./internal/meta/pg/
func BenchmarkStores(b *testing.B) {
	value := make([]byte, 300)
	rates := map[string]float64{}
	run := func(name string, open func(b *testing.B) meta.Store, feed bool) {
		b.Run(name, func(b *testing.B) {
			s := open(b)
			defer s.Close()
			var n atomic.Uint64
			b.SetParallelism(max(1, 16/ceilProcs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					err := s.Update(context.Background(), func(tx meta.Tx) error {
						if feed {
							seq, err := tx.NextSeq("feed")
							if err != nil {
								return err
							}
							if err := tx.Put("feed", binary.BigEndian.AppendUint64(nil, seq), value[:120]); err != nil {
								return err
							}
						}
						return tx.Put("versions", []byte(fmt.Sprintf("bucket\x00dir%03d/file%07d\x00v", i%100, i)), value)
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			if ps, ok := s.(*Store); ok && ps.Stats().Commits > 0 {
				st := ps.Stats()
				b.ReportMetric(float64(st.Transactions)/float64(st.Commits), "tx/commit")
			}
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "updates/s")
			rates[name] = rate
		})
	}
	openBolt := func(b *testing.B) meta.Store {
		s, err := bolt.Open(filepath.Join(b.TempDir(), "meta.db"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	openPG := func(b *testing.B) meta.Store {
		s, err := Open(context.Background(), pgtest.With(pgtest.Database(b), "pool_max_conns", "16"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	run("bolt", openBolt, true)
	run("postgres", openPG, true)
	run("postgres-nofeed", openPG, false)
	if rates["bolt"] > 0 {
		b.Logf("updates/s: bolt %.0f, postgres %.0f (%.2f× bolt), postgres without the feed %.0f (%.2f× bolt)",
			rates["bolt"], rates["postgres"], rates["postgres"]/rates["bolt"], rates["postgres-nofeed"], rates["postgres-nofeed"]/rates["bolt"])
	}
}

func ceilProcs() int { return max(1, testingProcs()) }

func testingProcs() int { return runtime.GOMAXPROCS(0) }
