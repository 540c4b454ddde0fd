package vault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kopia/kopia/repo/logging"
	"go.uber.org/goleak"
)

// testCtx carries kopia's log to stderr when VAULT_DEBUG is set.
func testCtx() context.Context {
	ctx := context.Background()
	if os.Getenv("VAULT_DEBUG") != "" {
		ctx = logging.WithLogger(ctx, logging.ToWriter(os.Stderr))
	}
	return ctx
}

var testSecret = []byte("deployment key of the test region")

// obj is a test object whose data is generated from (n, version), so it can
// be regenerated to compare instead of being kept in memory.
type obj struct {
	n, version int
	size       int64
}

func (o obj) reader() io.Reader {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(o.n))
	binary.LittleEndian.PutUint64(seed[8:], uint64(o.version))
	return io.LimitReader(rand.NewChaCha8(seed), o.size)
}

func (o obj) sha() string {
	h := sha256.New()
	if _, err := io.Copy(h, o.reader()); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (o obj) entry() Entry {
	return Entry{
		Key:          fmt.Sprintf("dir/object-%04d", o.n),
		VersionID:    fmt.Sprintf("v%d", o.version),
		Size:         o.size,
		ETag:         fmt.Sprintf(`"etag-%d-%d"`, o.n, o.version),
		ContentType:  "application/octet-stream",
		LastModified: int64(o.n)*1e9 + int64(o.version),
		Metadata:     map[string]string{"owner": "test", "n": fmt.Sprint(o.n)},
		Tags:         map[string]string{"class": fmt.Sprint(o.n % 3)},
		Checksums:    map[string]string{"CRC32C": fmt.Sprintf("crc-%d", o.n)},
	}
}

// objects returns count objects of base numbers base.., sizes from 0 B to
// 5 MiB: mostly small, every 20th one large.
func objects(base, count int) []obj {
	r := rand.New(rand.NewPCG(uint64(base), 7))
	out := make([]obj, count)
	for i := range out {
		var size int64
		switch {
		case i == 0:
			size = 0
		case i == 1:
			size = 5 << 20
		case i%20 == 0:
			size = r.Int64N(5 << 20)
		default:
			size = r.Int64N(100 << 10)
		}
		out[i] = obj{n: base + i, size: size}
	}
	return out
}

func totalSize(objs []obj) (n int64) {
	for _, o := range objs {
		n += o.size
	}
	return n
}

func openVault(t testing.TB, dir string) *Vault {
	t.Helper()
	v, err := Open(context.Background(), dir, testSecret)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return v
}

func writePoint(t testing.TB, v *Vault, id string, labels map[string]string, objs []obj) *Point {
	t.Helper()
	ctx := context.Background()
	w, err := v.Begin(ctx, id, labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := w.Put(ctx, o.entry(), o.reader()); err != nil {
			t.Fatal(err)
		}
	}
	p, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkPoint compares a point's entries and data with objs.
func checkPoint(t *testing.T, v *Vault, id string, objs []obj) {
	t.Helper()
	ctx := context.Background()
	i := 0
	err := v.Entries(ctx, id, func(e Entry, ref ObjectRef) error {
		if i >= len(objs) {
			return errors.New("too many entries")
		}
		o := objs[i]
		i++
		want := o.entry()
		if fmt.Sprint(e) != fmt.Sprint(want) {
			return fmt.Errorf("entry %d = %+v, want %+v", i-1, e, want)
		}
		rd, err := v.Open(ctx, ref)
		if err != nil {
			return err
		}
		defer rd.Close()
		got, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		wantData, _ := io.ReadAll(o.reader())
		if !bytes.Equal(got, wantData) {
			return fmt.Errorf("%s: data differs (%d bytes, want %d)", e.Key, len(got), len(wantData))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(objs) {
		t.Fatalf("%d entries, want %d", i, len(objs))
	}
}

func dirSize(t testing.TB, dir string) (n int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kopia's process-wide helpers, started once and never stopped.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/klauspost/compress/zstd.(*blockDec).startDecoder"),
	)
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	objs := objects(0, 200)
	v := openVault(t, dir)
	p := writePoint(t, v, "p1", map[string]string{"resource": "bucket-a"}, objs)
	if p.Entries != 200 || p.Bytes != totalSize(objs) {
		t.Fatalf("point = %+v, want 200 entries, %d bytes", p, totalSize(objs))
	}
	t.Logf("point: %d entries, %d bytes, %d new", p.Entries, p.Bytes, p.BytesNew)
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}

	v = openVault(t, dir)
	defer v.Close(ctx)
	points, err := v.Points(ctx, map[string]string{"resource": "bucket-a"})
	if err != nil || len(points) != 1 || points[0].ID != "p1" || points[0].Labels["resource"] != "bucket-a" {
		t.Fatalf("points = %v, %v", points, err)
	}
	if none, _ := v.Points(ctx, map[string]string{"resource": "other"}); len(none) != 0 {
		t.Fatalf("points of other resource = %v", none)
	}
	checkPoint(t, v, "p1", objs)
	if err := v.Verify(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Begin(ctx, "p1", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("begin existing point: %v", err)
	}
	if err := v.Entries(ctx, "nope", func(Entry, ObjectRef) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("entries of missing point: %v", err)
	}
}

func TestDedupAndIncremental(t *testing.T) {
	ctx := context.Background()
	v := openVault(t, t.TempDir())
	defer v.Close(ctx)
	objs := objects(0, 200)
	total := totalSize(objs)

	first := writePoint(t, v, "full-1", nil, objs)
	second := writePoint(t, v, "full-2", nil, objs)
	t.Logf("first:  %d bytes, %d new (%.1f %%)", first.Bytes, first.BytesNew, pct(first.BytesNew, first.Bytes))
	t.Logf("second: %d bytes, %d new (%.3f %%)", second.Bytes, second.BytesNew, pct(second.BytesNew, second.Bytes))
	if float64(second.BytesNew) >= 0.01*float64(total) {
		t.Errorf("second point of the same data wrote %d bytes of %d", second.BytesNew, total)
	}

	// 10 % of the objects change (every 10th), the rest are the same.
	changed := append([]obj(nil), objs...)
	var changedBytes int64
	for i := 5; i < len(changed); i += 10 {
		changed[i].version = 1
		changedBytes += changed[i].size
	}
	third := writePoint(t, v, "full-3", nil, changed)
	t.Logf("10%% changed: %d bytes, %d changed, %d new (%.1f %% of total, %.2fx changed bytes)",
		third.Bytes, changedBytes, third.BytesNew, pct(third.BytesNew, third.Bytes), float64(third.BytesNew)/float64(changedBytes))
	if third.BytesNew < changedBytes*9/10 || third.BytesNew > changedBytes*12/10+256<<10 {
		t.Errorf("10%% changed point wrote %d bytes, changed bytes %d", third.BytesNew, changedBytes)
	}

	// Incremental: unchanged objects by reference, not read again.
	refs := map[string]ObjectRef{}
	if err := v.Entries(ctx, "full-1", func(e Entry, ref ObjectRef) error { refs[e.Key] = ref; return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range changed {
		changed[i].version = 2 * (changed[i].version)
	}
	w, err := v.Begin(ctx, "incr-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var incrChanged int64
	for i, o := range changed {
		if i%10 == 5 {
			incrChanged += o.size
			if err := w.Put(ctx, o.entry(), o.reader()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := w.PutUnchanged(ctx, o.entry(), refs[o.entry().Key]); err != nil {
			t.Fatal(err)
		}
	}
	incr, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("incremental: %d bytes, %d new (%.1f %%)", incr.Bytes, incr.BytesNew, pct(incr.BytesNew, incr.Bytes))
	if incr.BytesNew > incrChanged*12/10+256<<10 {
		t.Errorf("incremental wrote %d bytes, changed %d", incr.BytesNew, incrChanged)
	}
	checkPoint(t, v, "incr-1", changed)
	if err := w.PutUnchanged(ctx, Entry{Key: "x"}, ObjectRef{ID: "Ixyz"}); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("put after commit: %v", err)
	}
}

func pct(a, b int64) float64 { return 100 * float64(a) / float64(b) }

func TestEncryption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := openVault(t, dir)
	secret := obj{n: 999, size: 256 << 10}
	writePoint(t, v, "p", nil, []obj{secret, {n: 1, size: 10}})
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(secret.reader())
	var needles [][]byte
	for off := 0; off+32 <= len(plain); off += len(plain) / 16 {
		needles = append(needles, plain[off:off+32])
	}
	// Entry metadata must not show either.
	needles = append(needles, []byte("dir/object-0999"))
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(data, n) {
				return fmt.Errorf("plaintext %q found in %s", n[:8], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := Open(ctx, dir, []byte("another key")); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("open with wrong secret: %v", err)
	}
	// Without the connection file the wrong secret fails at connect.
	if err := os.Remove(filepath.Join(dir, configFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, []byte("another key")); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("connect with wrong secret: %v", err)
	}
	v = openVault(t, dir)
	defer v.Close(ctx)
	if err := v.Verify(ctx, "p"); err != nil {
		t.Fatal(err)
	}
}

func TestAbortAndCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := openVault(t, dir)
	writePoint(t, v, "committed", nil, objects(0, 5))
	base := dirSize(t, filepath.Join(dir, repoDir))

	w, err := v.Begin(ctx, "aborted", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Big enough (24 MiB) that kopia uploads full packs before the abort.
	for _, o := range []obj{{n: 100, size: 24 << 20}} {
		if err := w.Put(ctx, o.entry(), o.reader()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("commit after abort: %v", err)
	}

	// A crash: a writer that never commits and a vault never closed.
	w2, err := v.Begin(ctx, "crashed", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []obj{{n: 200, size: 24 << 20}} {
		if err := w2.Put(ctx, o.entry(), o.reader()); err != nil {
			t.Fatal(err)
		}
	}
	crashed := v // dropped: no Commit, no Close until the end of the test
	defer crashed.Close(ctx)

	v = openVault(t, dir)
	defer v.Close(ctx)
	points, err := v.Points(ctx, nil)
	if err != nil || len(points) != 1 || points[0].ID != "committed" {
		t.Fatalf("points = %v, %v", points, err)
	}
	grown := dirSize(t, filepath.Join(dir, repoDir))
	// Collect in the new process reclaims what the dead writers uploaded.
	// (The old Vault is gone as far as this one knows; its gate is its own.)
	if err := v.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, filepath.Join(dir, repoDir))
	t.Logf("repo size: %d committed, %d with aborted/crashed writes, %d after collect", base, grown, after)
	if grown-after < 30<<20 {
		t.Errorf("collect did not reclaim aborted writes: %d -> %d", grown, after)
	}
	if err := v.Verify(ctx, "committed"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Point(ctx, "aborted"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted point: %v", err)
	}
}

func TestDeleteAndCollect(t *testing.T) {
	ctx := testCtx()
	dir := t.TempDir()
	v := openVault(t, dir)
	defer v.Close(ctx)
	shared := objects(0, 40)
	a := append(append([]obj(nil), shared...), objects(1000, 60)...)
	b := append(append([]obj(nil), shared...), objects(2000, 60)...)
	writePoint(t, v, "a", nil, a)
	writePoint(t, v, "b", nil, b)
	repoPath := filepath.Join(dir, repoDir)
	before := dirSize(t, repoPath)

	if err := v.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := v.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, repoPath)
	onlyA := totalSize(objects(1000, 60))
	t.Logf("repo size %d -> %d after deleting a point with %d unique bytes", before, after, onlyA)
	if before-after < onlyA*8/10 {
		t.Errorf("collect reclaimed %d bytes, want about %d", before-after, onlyA)
	}
	if err := v.Verify(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	checkPoint(t, v, "b", b)
	// A second collect is harmless.
	if err := v.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	points, _ := v.Points(ctx, nil)
	if len(points) != 1 || points[0].ID != "b" {
		t.Fatalf("points = %v", points)
	}
}

func TestCopyPoint(t *testing.T) {
	ctx := context.Background()
	src := openVault(t, t.TempDir())
	defer src.Close(ctx)
	dst := openVault(t, t.TempDir())
	defer dst.Close(ctx)

	objs := objects(0, 100)
	p1 := writePoint(t, src, "p1", nil, objs)
	changed := append([]obj(nil), objs...)
	for i := 3; i < len(changed); i += 10 {
		changed[i].version = 1
	}
	writePoint(t, src, "p2", nil, changed)

	sent1, err := CopyPoint(ctx, src, dst, "p1", "copy-1", map[string]string{"source": "src"})
	if err != nil {
		t.Fatal(err)
	}
	sent2, err := CopyPoint(ctx, src, dst, "p2", "copy-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("copy: first point %d bytes, sent %d; second sent %d (%.1f %%)", p1.Bytes, sent1, sent2, pct(sent2, p1.Bytes))
	if sent2 > sent1/4 {
		t.Errorf("second copy sent %d bytes, first %d", sent2, sent1)
	}
	for _, id := range []string{"copy-1", "copy-2"} {
		if err := dst.Verify(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	checkPoint(t, dst, "copy-2", changed)
	if ps, _ := dst.Points(ctx, map[string]string{"source": "src"}); len(ps) != 1 || ps[0].ID != "copy-1" {
		t.Fatalf("points = %v", ps)
	}
	if _, err := CopyPoint(ctx, src, dst, "p1", "copy-1", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("copy onto existing point: %v", err)
	}
}

func TestCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := openVault(t, dir)
	writePoint(t, v, "p", nil, objects(0, 30))
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var packs []string
	// Data packs are the blobs named p..., stored as repo/p/<shard>/<rest>.f.
	err := filepath.WalkDir(filepath.Join(dir, repoDir, "p"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".f") {
			packs = append(packs, path)
		}
		return err
	})
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pack files: %v", err)
	}
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x40
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v = openVault(t, dir)
	defer v.Close(ctx)
	err = v.Verify(ctx, "p")
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of a corrupt vault: %v", err)
	}
	t.Logf("verify: %.300s", err)
}
