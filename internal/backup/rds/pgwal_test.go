package rds

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestLSNAndFileNames(t *testing.T) {
	l, err := parseLSN("16/B374D848")
	if err != nil || l != 0x16B374D848 || formatLSN(l) != "16/B374D848" {
		t.Fatalf("parse: %x %v", l, err)
	}
	seg := uint64(16 << 20)
	name := walFileName(1, 0x16B374D848, seg)
	if name != "0000000100000016000000B3" {
		t.Fatalf("file name %s", name)
	}
	tli, start, ok := parseWALFileName(name, seg)
	if !ok || tli != 1 || start != 0x16B3000000 {
		t.Fatalf("parse file name: %d %x %v", tli, start, ok)
	}
	if _, _, ok := parseWALFileName("00000002.history", seg); ok {
		t.Fatal("a history file read as a segment")
	}
	if _, hole := contiguous([]walRange{{0, 10}, {5, 20}, {20, 30}}); hole {
		t.Fatal("no hole reported as one")
	}
	if upTo, hole := contiguous([]walRange{{0, 10}, {11, 20}}); !hole || upTo != 10 {
		t.Fatalf("hole: %d %v", upTo, hole)
	}
}

var waldumpXact = regexp.MustCompile(`lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: (COMMIT_PREPARED|ABORT_PREPARED|COMMIT|ABORT)(?: \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC`)

// TestWALScannerMatchesWaldump scans WAL a real cluster wrote — small and
// large transactions, aborts, records across pages, a segment switch —
// fed in pieces of random sizes, from a segment's start and from the
// middle of a page, and finds the commit and abort records pg_waldump
// finds, with their times.
func TestWALScannerMatchesWaldump(t *testing.T) {
	c := StartTestCluster(t, TestClusterOptions{Conf: "max_prepared_transactions = 5\nwal_keep_size = 1024"})
	waldump := filepath.Join(c.BinDir, "pg_waldump")
	if !isExecutable(waldump) {
		t.Skipf("no pg_waldump in %s", c.BinDir)
	}
	ctx := context.Background()
	conn := c.Conn(t)
	var startS string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&startS); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE t (id int, pad text)",
		"INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g",
		"BEGIN; INSERT INTO t VALUES (-1, 'gone'); ROLLBACK",
		"INSERT INTO t VALUES (1, repeat(md5('a'), 2000))", // a record across pages
		"BEGIN; CREATE TABLE u (a int); CREATE INDEX ON u (a); SAVEPOINT s; INSERT INTO u VALUES (1); RELEASE s; COMMIT",
		"BEGIN; INSERT INTO t VALUES (2, 'p'); PREPARE TRANSACTION 'p1'",
		"COMMIT PREPARED 'p1'",
		"SELECT pg_switch_wal()",
		"INSERT INTO t SELECT g, 'y' FROM generate_series(1, 20000) g",
		"UPDATE t SET pad = 'z' WHERE id < 1000",
		"CHECKPOINT",
		"INSERT INTO t VALUES (3, 'last')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var endS string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&endS); err != nil {
		t.Fatal(err)
	}
	start, _ := parseLSN(startS)
	end, _ := parseLSN(endS)
	out, err := exec.Command(waldump, "-p", filepath.Join(c.Data, "pg_wal"), "-s", startS, "-e", endS, "-r", "Transaction").CombinedOutput()
	if err != nil {
		t.Fatalf("pg_waldump: %v\n%s", err, out)
	}
	type rec struct {
		lsn    uint64
		at     time.Time
		commit bool
	}
	var want []rec
	for _, m := range waldumpXact.FindAllStringSubmatch(string(out), -1) {
		l, _ := parseLSN(m[1])
		at, err := time.Parse("2006-01-02 15:04:05.999999", m[3])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rec{l, at.UTC(), strings.HasPrefix(m[2], "COMMIT")})
	}
	if len(want) < 8 {
		t.Fatalf("pg_waldump found %d transaction records:\n%s", len(want), out)
	}
	segSize := uint64(16 << 20)
	scan := func(from uint64) []rec {
		var got []rec
		sc := newWALScanner(from, segSize, func(r xactRecord) {
			if r.LSN >= start && r.End <= end {
				got = append(got, rec{r.LSN, r.Time, r.Commit})
			}
		})
		for seg := from - from%segSize; seg < end; seg += segSize {
			b, err := os.ReadFile(filepath.Join(c.Data, "pg_wal", walFileName(1, seg, segSize)))
			if err != nil {
				t.Fatal(err)
			}
			b = b[max(from, seg)-seg : min(end-seg, segSize)]
			for len(b) > 0 {
				n := min(len(b), 1+rand.IntN(20000))
				sc.Feed(b[:n])
				b = b[n:]
			}
		}
		if sc.Broken > 0 {
			t.Errorf("scan from %s lost its footing at %s", formatLSN(from), formatLSN(sc.BrokenAt))
		}
		return got
	}
	got := scan(start - start%segSize)
	if len(got) != len(want) {
		for _, r := range got {
			t.Logf("scanner: %s %v %v", formatLSN(r.lsn), r.at, r.commit)
		}
		t.Logf("pg_waldump:\n%s", out)
		t.Fatalf("scanner found %d transaction records, pg_waldump %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: scanner %s %v %v, pg_waldump %s %v %v", i, formatLSN(got[i].lsn), got[i].at, got[i].commit,
				formatLSN(want[i].lsn), want[i].at, want[i].commit)
		}
	}
	// From the middle of a page: what it reports is pg_waldump's, from the
	// next page on.
	mid := start + 12345
	part := scan(mid)
	next := mid - mid%walPageSize + walPageSize
	var wantPart []rec
	for _, r := range want {
		if r.lsn >= next {
			wantPart = append(wantPart, r)
		}
	}
	if len(part) < len(wantPart) || len(part) > len(wantPart)+1 {
		t.Fatalf("from the middle of a page: %d records, want %d", len(part), len(wantPart))
	}
	for i := range wantPart {
		if part[len(part)-len(wantPart)+i] != wantPart[i] {
			t.Fatalf("from the middle of a page: record %d differs", i)
		}
	}
}

// TestWALScannerGarbage feeds the scanner bytes that are not WAL: it
// reports nothing.
func TestWALScannerGarbage(t *testing.T) {
	b := make([]byte, 3*walPageSize)
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	n := 0
	sc := newWALScanner(0, 16<<20, func(xactRecord) { n++ })
	sc.Feed(b)
	sc.Feed(make([]byte, walPageSize))
	if n != 0 {
		t.Fatalf("%d records in garbage", n)
	}
}
