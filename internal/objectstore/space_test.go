package objectstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

var errNoRoom = errors.New("no room")

// fakeSpace refuses everything while full and counts what it admitted and
// has not seen released.
type fakeSpace struct {
	mu          sync.Mutex
	full        bool
	asked       []int64
	outstanding int64
}

func (f *fakeSpace) Admit(size int64) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, size)
	if f.full {
		return nil, errNoRoom
	}
	f.outstanding += size
	return func() {
		f.mu.Lock()
		f.outstanding -= size
		f.mu.Unlock()
	}, nil
}

// TestSpaceAdmitsOnlyNewData: bodies, parts, replicas and the start of an
// upload ask for room and are refused without it, leaving nothing behind;
// deletes, delete markers (replicated ones too), completing and aborting
// uploads and tag changes never ask.
func TestSpaceAdmitsOnlyNewData(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	space := &fakeSpace{}
	s.space = space
	if err := s.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	kept := put(t, s, "bkt", "kept", "data long enough for a blob")
	if len(space.asked) != 1 || space.asked[0] != int64(len("data long enough for a blob")) || space.outstanding != 0 {
		t.Fatalf("a put asked %v and left %d bytes admitted", space.asked, space.outstanding)
	}
	u, parts, _ := uploadParts(t, s, "bkt", "mp", "", "", 100)
	u2, _, _ := uploadParts(t, s, "bkt", "mp2", "", "", 100)
	blobsBefore := countBlobs(t, blobs)

	space.full = true
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errNoRoom) {
			t.Fatalf("%s on a full disk: got %v, want the space's refusal", what, err)
		}
	}
	_, err := s.PutObject(ctx, &PutInput{Bucket: "bkt", Key: "new", Body: strings.NewReader("more data, as a blob"), Size: 20})
	refused("PutObject", err)
	_, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "bkt", SrcKey: "kept", Dst: PutInput{Bucket: "bkt", Key: "copy"}})
	refused("CopyObject", err)
	_, err = s.CreateUpload(ctx, &UploadInput{Bucket: "bkt", Key: "mp3"})
	refused("CreateMultipartUpload", err)
	_, err = s.UploadPart(ctx, &PartInput{Bucket: "bkt", Key: "mp", UploadID: u.UploadID, Number: 2, Body: strings.NewReader("x"), Size: 1})
	refused("UploadPart", err)
	_, err = s.ApplyReplica(ctx, "bkt", "replica", replicaOf("replicated data", "0000000000000000000000000A"), strings.NewReader("replicated data"), "")
	refused("a replica", err)
	if n := countBlobs(t, blobs); n != blobsBefore {
		t.Fatalf("refused writes left blobs: %d, were %d", n, blobsBefore)
	}
	for _, k := range []string{"new", "copy", "replica"} {
		if _, err := s.HeadObject(ctx, "bkt", k, ""); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("refused %s: %v", k, err)
		}
	}

	asked := len(space.asked)
	marker := &ReplicaMeta{VersionID: "0000000000000000000000000B", DeleteMarker: true}
	if _, err := s.ApplyReplica(ctx, "bkt", "replica", marker, strings.NewReader(""), ""); err != nil {
		t.Fatalf("a replicated delete marker on a full disk: %v", err)
	}
	if _, err := s.DeleteObject(ctx, "bkt", "kept", ""); err != nil {
		t.Fatalf("a delete marker on a full disk: %v", err)
	}
	if _, err := s.DeleteObject(ctx, "bkt", "kept", kept.VersionID); err != nil {
		t.Fatalf("a version delete on a full disk: %v", err)
	}
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "bkt", Key: "mp", UploadID: u.UploadID, Parts: parts}); err != nil {
		t.Fatalf("completing an upload on a full disk: %v", err)
	}
	if err := s.AbortUpload(ctx, "bkt", "mp2", u2.UploadID); err != nil {
		t.Fatalf("aborting an upload on a full disk: %v", err)
	}
	if _, err := s.SetTags(ctx, "bkt", "mp", "", map[string]string{"a": "b"}); err != nil {
		t.Fatalf("tagging on a full disk: %v", err)
	}
	if len(space.asked) != asked {
		t.Fatalf("deletes, completes, aborts or tags asked for room: %v", space.asked[asked:])
	}
	if space.outstanding != 0 {
		t.Fatalf("%d bytes admitted and never released", space.outstanding)
	}
}
