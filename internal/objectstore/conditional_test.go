package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

func condPut(s *Store, bucket, key, data string, c WriteCondition) (*Version, error) {
	return s.PutObject(context.Background(), &PutInput{
		Bucket: bucket, Key: key, Body: strings.NewReader(data), Size: int64(len(data)), WriteCondition: c,
	})
}

func TestConditionalPut(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"", VersioningEnabled, VersioningSuspended} {
		t.Run("versioning="+mode, func(t *testing.T) {
			s, blobs := newStore(t)
			_ = s.CreateBucket(ctx, "cond", "o", "us-west-2")
			if mode != "" {
				if err := s.SetVersioning(ctx, "cond", mode); err != nil {
					t.Fatal(err)
				}
			}
			big := strings.Repeat("x", 100) // past the inline limit: a blob
			if _, err := condPut(s, "cond", "k", big, WriteCondition{IfMatch: `"abc"`}); !errors.Is(err, ErrNoSuchKey) {
				t.Fatalf("If-Match on a missing key: %v", err)
			}
			v1, err := condPut(s, "cond", "k", big, WriteCondition{IfNoneMatch: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := condPut(s, "cond", "k", big+"2", WriteCondition{IfNoneMatch: true}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("If-None-Match on an existing key: %v", err)
			}
			if _, err := condPut(s, "cond", "k", big+"2", WriteCondition{IfMatch: `"0123"`}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("If-Match with another ETag: %v", err)
			}
			if n := countBlobs(t, blobs); n != 1 {
				t.Fatalf("%d blobs after refused writes, want 1", n)
			}
			if _, err := condPut(s, "cond", "k", "second", WriteCondition{IfMatch: `"` + v1.ETag + `"`}); err != nil {
				t.Fatal(err)
			}
			if _, err := condPut(s, "cond", "k", "third", WriteCondition{IfMatch: "*"}); err != nil {
				t.Fatalf("If-Match * on an existing key: %v", err)
			}
			if got, _ := read(t, s, "cond", "k", ""); got != "third" {
				t.Fatalf("content %q", got)
			}

			// A delete marker is no current object.
			if _, err := s.DeleteObject(ctx, "cond", "k", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := condPut(s, "cond", "k", "x", WriteCondition{IfMatch: "*"}); !errors.Is(err, ErrNoSuchKey) {
				t.Fatalf("If-Match after delete: %v", err)
			}
			if _, err := condPut(s, "cond", "k", "again", WriteCondition{IfNoneMatch: true}); err != nil {
				t.Fatalf("If-None-Match after delete: %v", err)
			}
		})
	}
}

// barrierReader blocks its first Read until every writer has passed the
// pre-check, so that the race is decided by the check inside the commit.
type barrierReader struct {
	r    io.Reader
	wg   *sync.WaitGroup
	once sync.Once
}

func (b *barrierReader) Read(p []byte) (int, error) {
	b.once.Do(func() { b.wg.Done(); b.wg.Wait() })
	return b.r.Read(p)
}

func TestConditionalPutRace(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	_ = s.CreateBucket(ctx, "race", "o", "us-west-2")
	const writers = 16
	var barrier, done sync.WaitGroup
	barrier.Add(writers)
	errs := make([]error, writers)
	for i := range writers {
		done.Add(1)
		go func() {
			defer done.Done()
			data := fmt.Sprintf("%02d", i) + strings.Repeat("y", 100)
			_, errs[i] = s.PutObject(ctx, &PutInput{
				Bucket: "race", Key: "k", Size: int64(len(data)),
				Body:           &barrierReader{r: strings.NewReader(data), wg: &barrier},
				WriteCondition: WriteCondition{IfNoneMatch: true},
			})
		}()
	}
	done.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrPreconditionFailed):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	if got, _ := read(t, s, "race", "k", ""); got[:2] != fmt.Sprintf("%02d", winner) {
		t.Fatalf("stored %q, winner %d", got[:2], winner)
	}
	if n := countBlobs(t, blobs); n != 1 {
		t.Fatalf("%d blobs, want only the winner's", n)
	}
}

func TestConditionalComplete(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	_ = s.CreateBucket(ctx, "mpc", "o", "us-west-2")
	old := put(t, s, "mpc", "k", "existing")
	u, parts, data := uploadParts(t, s, "mpc", "k", "", "", MinPartSize, 10)
	in := &CompleteInput{Bucket: "mpc", Key: "k", UploadID: u.UploadID, Parts: parts}

	in.WriteCondition = WriteCondition{IfNoneMatch: true}
	if _, err := s.CompleteUpload(ctx, in); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-None-Match: %v", err)
	}
	in.WriteCondition = WriteCondition{IfMatch: "0000"}
	if _, err := s.CompleteUpload(ctx, in); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match with another ETag: %v", err)
	}
	// The refused completes left the upload as it was.
	if _, err := s.GetUpload(ctx, "mpc", "k", u.UploadID); err != nil {
		t.Fatal(err)
	}
	in.WriteCondition = WriteCondition{IfMatch: old.ETag}
	v, err := s.CompleteUpload(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// A retried complete answers as the first did, the condition aside.
	again, err := s.CompleteUpload(ctx, in)
	if err != nil || again.ETag != v.ETag {
		t.Fatalf("retried complete: %v %v", again, err)
	}
	if got, _ := read(t, s, "mpc", "k", ""); got != string(data) {
		t.Fatal("content differs")
	}

	u2, parts2, _ := uploadParts(t, s, "mpc", "new", "", "", 10)
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpc", Key: "new", UploadID: u2.UploadID, Parts: parts2, WriteCondition: WriteCondition{IfMatch: "*"}}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("If-Match on a missing key: %v", err)
	}
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpc", Key: "new", UploadID: u2.UploadID, Parts: parts2, WriteCondition: WriteCondition{IfNoneMatch: true}}); err != nil {
		t.Fatal(err)
	}
}
