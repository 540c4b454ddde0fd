package rds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// memLog is a continuous point's log in memory: a piece is there whole or
// not at all, as backup.StreamRun's Append promises.
type memLog struct {
	mu     sync.Mutex
	cursor []byte
	pieces []memPiece
	gaps   []string
}

type memPiece struct {
	to      time.Time
	cursor  walCursor
	entries []memEntry
}

type memEntry struct {
	e    vault.Entry
	data []byte
}

func (l *memLog) Cursor() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.cursor)
}

func (l *memLog) Append(ctx context.Context, to time.Time, cursor []byte, fill func(put func(e vault.Entry, body io.Reader) error) error) error {
	var p memPiece
	err := fill(func(e vault.Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if int64(len(b)) != e.Size {
			return fmt.Errorf("entry %s: %d bytes, says %d", e.Key, len(b), e.Size)
		}
		p.entries = append(p.entries, memEntry{e, b})
		return nil
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil { // killed before the commit
		return err
	}
	p.to = to
	if err := json.Unmarshal(cursor, &p.cursor); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pieces = append(l.pieces, p)
	l.cursor = bytes.Clone(cursor)
	return nil
}

func (l *memLog) Advance(ctx context.Context, to time.Time, cursor []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cursor = bytes.Clone(cursor)
	return nil
}

func (l *memLog) Gap(ctx context.Context, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gaps = append(l.gaps, reason)
	l.cursor = nil
	return nil
}

func (l *memLog) lsn() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cursor) == 0 {
		return 0
	}
	var c walCursor
	_ = json.Unmarshal(l.cursor, &c)
	v, _ := parseLSN(c.LSN)
	return v
}

func testRegistration(c *TestCluster) *backup.Registered {
	return &backup.Registered{Name: "x", Engine: backup.EnginePostgres, Settings: map[string]string{
		backup.SettingHost: "127.0.0.1", backup.SettingPort: c.PortString(), backup.SettingUser: "postgres"}}
}

const testARN = "arn:aws:rds:us-west-2:111122223333:db:streamed"

// runStream streams until ctx ends, starting again after every failure as
// the job service does.
func runStream(ctx context.Context, t *testing.T, pg *Postgres, reg *backup.Registered, log *memLog) {
	for ctx.Err() == nil {
		err := pg.stream(ctx, reg, "", testARN, log)
		if ctx.Err() == nil {
			t.Logf("stream ended: %v", err)
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func writeRows(t *testing.T, c *TestCluster, stop <-chan struct{}, done *sync.WaitGroup) {
	conn := c.Conn(t)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS rows (n bigserial PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	done.Add(1)
	go func() {
		defer done.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := conn.Exec(context.Background(), "INSERT INTO rows (pad) SELECT repeat('w', 300) FROM generate_series(1, 20)"); err != nil {
				t.Error(err)
				return
			}
		}
	}()
}

// TestPostgresStreamKilled streams a cluster under write load and kills
// the stream at random moments — in the middle of a piece, after a piece
// and before the server heard of it — once leaving its replication
// connection open, as a killed process does. Each time the stream resumes
// from the slot at its cursor: the pieces hold exactly the server's WAL,
// without a hole, and no piece claims an instant whose ending transaction
// record is not in the pieces.
func TestPostgresStreamKilled(t *testing.T) {
	c := StartTestCluster(t, TestClusterOptions{Conf: "wal_keep_size = 1024"})
	stop := make(chan struct{})
	var writers sync.WaitGroup
	writeRows(t, c, stop, &writers)
	pg := NewPostgres(PostgresConfig{Dir: t.TempDir(), ShipEvery: 200 * time.Millisecond, HeartbeatEvery: 300 * time.Millisecond})
	reg := testRegistration(c)
	log := &memLog{}
	for i := range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(300+rand.IntN(1500))*time.Millisecond)
		runStream(ctx, t, pg, reg, log)
		cancel()
		if i == 2 && log.lsn() > 0 {
			orphan(t, c, log.lsn())
		}
	}
	close(stop)
	writers.Wait()
	var flushS string
	if err := c.Conn(t).QueryRow(context.Background(), "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushS); err != nil {
		t.Fatal(err)
	}
	flush, _ := parseLSN(flushS)
	ctx, cancel := context.WithCancel(context.Background())
	var streamed sync.WaitGroup
	streamed.Go(func() { runStream(ctx, t, pg, reg, log) })
	deadline := time.Now().Add(time.Minute)
	for log.lsn() < flush && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	streamed.Wait()
	if log.lsn() < flush {
		t.Fatalf("the stream reached %s, the server %s", formatLSN(log.lsn()), flushS)
	}
	if len(log.gaps) > 0 {
		t.Fatalf("gaps: %v", log.gaps)
	}
	checkPieces(t, c, log)
}

// orphan leaves a replication connection streaming from the slot, never
// read and never closed: what a killed Bulwark leaves until the server's
// wal_sender_timeout.
func orphan(t *testing.T, c *TestCluster, at uint64) {
	cfg, err := connConfig(settingsOf(testRegistration(c)), "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = slotName(testARN)
	rc, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close(context.Background()) })
	if err := pglogrepl.StartReplication(context.Background(), rc, slotName(testARN), pglogrepl.LSN(at),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.PhysicalReplication}); err != nil {
		t.Fatal(err)
	}
}

// checkPieces compares the WAL of the pieces with the server's segment
// files, and every piece's instant with the transaction records before its
// end.
func checkPieces(t *testing.T, c *TestCluster, log *memLog) {
	t.Helper()
	const segSize = 16 << 20
	segs := map[string][]byte{}
	var first, end uint64
	var ends []uint64
	for i, p := range log.pieces {
		for _, e := range p.entries {
			name := strings.TrimPrefix(e.e.Key, walKeyPrefix)
			_, seg, ok := parseWALFileName(name, segSize)
			off, err := strconv.ParseUint(e.e.Metadata[pgEntryOffset], 10, 64)
			if !ok || err != nil {
				t.Fatalf("piece %d: entry %s", i, e.e.Key)
			}
			if segs[name] == nil {
				segs[name] = make([]byte, segSize)
			}
			copy(segs[name][off:], e.data)
			at := seg + off
			if i == 0 && first == 0 {
				first = at
			} else if at != end {
				t.Fatalf("piece %d starts at %s, the one before ended at %s", i, formatLSN(at), formatLSN(end))
			}
			end = at + uint64(len(e.data))
		}
		ends = append(ends, end)
		if i > 0 && p.to.Before(log.pieces[i-1].to) {
			t.Fatalf("piece %d claims %s, before piece %d's %s", i, p.to, i-1, log.pieces[i-1].to)
		}
	}
	// The bytes are the server's.
	for name, b := range segs {
		_, seg, _ := parseWALFileName(name, segSize)
		want, err := os.ReadFile(filepath.Join(c.Data, "pg_wal", name))
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := max(first, seg)-seg, min(end, seg+segSize)-seg
		if !bytes.Equal(b[lo:hi], want[lo:hi]) {
			t.Fatalf("segment %s differs from the server's between %d and %d", name, lo, hi)
		}
	}
	// Each piece's instant is before a transaction record it or an
	// earlier piece holds.
	var recs []xactRecord
	sc := newWALScanner(first-first%segSize, segSize, func(r xactRecord) { recs = append(recs, r) })
	for seg := first - first%segSize; seg < end; seg += segSize {
		b := segs[walFileName(1, seg, segSize)]
		if b == nil {
			t.Fatalf("no WAL of segment %s", formatLSN(seg))
		}
		if seg < first-first%segSize+segSize {
			// Before the first piece, the server's own bytes.
			want, _ := os.ReadFile(filepath.Join(c.Data, "pg_wal", walFileName(1, seg, segSize)))
			copy(b[:first-seg], want)
		}
		sc.Feed(b[:min(segSize, end-seg)])
	}
	for i, p := range log.pieces {
		var newest time.Time
		for _, r := range recs {
			if r.End <= ends[i] && r.Time.After(newest) {
				newest = r.Time
			}
		}
		if !p.to.Before(newest) {
			t.Fatalf("piece %d claims %s; the newest transaction record up to its end is of %s", i, p.to, newest)
		}
	}
	t.Logf("%d pieces, WAL %s to %s, %d transaction records, last claim %s", len(log.pieces), formatLSN(first), formatLSN(end), len(recs), log.pieces[len(log.pieces)-1].to.Format(time.RFC3339Nano))
}

// TestPostgresStreamGap drops the stream's slot while the stream is down
// and lets the server recycle the WAL after the cursor: the stream reports
// a gap, then goes on from a new slot.
func TestPostgresStreamGap(t *testing.T) {
	c := StartTestCluster(t, TestClusterOptions{Conf: "max_wal_size = 64MB\nmin_wal_size = 32MB"})
	pg := NewPostgres(PostgresConfig{Dir: t.TempDir(), ShipEvery: 100 * time.Millisecond, HeartbeatEvery: 200 * time.Millisecond})
	reg := testRegistration(c)
	log := &memLog{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	runStream(ctx, t, pg, reg, log)
	cancel()
	if log.lsn() == 0 {
		t.Fatal("no piece in 2 s")
	}
	c.Exec(t, "SELECT pg_drop_replication_slot($1)", slotName(testARN))
	c.Exec(t, "CREATE TABLE filler (pad text)")
	for range 4 {
		c.Exec(t, "INSERT INTO filler SELECT repeat('f', 500) FROM generate_series(1, 20000)")
		c.Exec(t, "SELECT pg_switch_wal()")
		c.Exec(t, "CHECKPOINT")
	}
	before := len(log.pieces)
	var gaps atomic.Int32
	ctx, cancel = context.WithCancel(context.Background())
	var streamed sync.WaitGroup
	streamed.Go(func() { runStream(ctx, t, pg, reg, log) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		log.mu.Lock()
		g, n := len(log.gaps), len(log.pieces)
		log.mu.Unlock()
		if g > 0 && n > before {
			gaps.Store(int32(g))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	streamed.Wait()
	if gaps.Load() != 1 || !strings.Contains(log.gaps[0], "no longer has the WAL") {
		t.Fatalf("gaps %v, pieces %d then %d", log.gaps, before, len(log.pieces))
	}
	t.Logf("gap: %s", log.gaps[0])
}
