package objectstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func replicaOf(data string, vid string) *ReplicaMeta {
	sum := md5.Sum([]byte(data))
	return &ReplicaMeta{VersionID: vid, Size: int64(len(data)), ETag: hex.EncodeToString(sum[:]), LastModified: time.Now().UTC()}
}

// Replicas arrive in any order and any number of times; the destination
// ends with each version once and the newest by version order as latest.
func TestApplyReplicaOrderAndRedelivery(t *testing.T) {
	ctx := context.Background()
	src, _ := newStore(t)
	dst, blobs := newStore(t)
	for _, s := range []*Store{src, dst} {
		if err := s.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
			t.Fatal(err)
		}
	}
	old := put(t, src, "bkt", "k", "old data, long enough to be a blob")
	mid := put(t, src, "bkt", "k", "mid")
	newest := put(t, src, "bkt", "k", "newest")
	order := []*Version{newest, old, newest, mid, old}
	for _, v := range order {
		_, body, err := src.GetObject(ctx, "bkt", "k", v.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dst.ApplyReplica(ctx, "bkt", "k", ReplicaMetaOf(v), body, ""); err != nil {
			t.Fatal(err)
		}
		body.Close()
	}
	var ids []string
	if _, _, err := dst.WalkVersions(ctx, "bkt", VersionCursor{}, 10, func(v *Version) error {
		ids = append(ids, v.VersionID)
		if v.ReplicationStatus != StatusReplica {
			t.Errorf("%s: status %q", v.VersionID, v.ReplicationStatus)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != strings.Join([]string{newest.VersionID, mid.VersionID, old.VersionID}, ",") {
		t.Fatalf("versions %v", ids)
	}
	if got, _ := read(t, dst, "bkt", "k", ""); got != "newest" {
		t.Fatalf("latest reads %q", got)
	}
	if n := countBlobs(t, blobs); n != 1 {
		t.Fatalf("%d blobs: a replica sent twice must not leave a second copy", n)
	}
}

func TestApplyReplicaRefusals(t *testing.T) {
	ctx := context.Background()
	dst, blobs := newStore(t)
	if err := dst.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	vid := "0036273N46O5C9R00002TLEKP8"
	if _, err := dst.ApplyReplica(ctx, "bkt", "k", replicaOf("x", vid), strings.NewReader("x"), ""); !errors.Is(err, ErrReplicaNotVersioned) {
		t.Fatalf("unversioned destination: %v", err)
	}
	if err := dst.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	m := replicaOf("the real data, long enough for a blob", vid)
	if _, err := dst.ApplyReplica(ctx, "bkt", "k", m, strings.NewReader("the real data, long enough for a bloB"), ""); err == nil {
		t.Fatal("data not matching the ETag was stored")
	}
	if _, err := dst.ApplyReplica(ctx, "bkt", "k", m, strings.NewReader("the real data"), ""); err == nil {
		t.Fatal("short data was stored")
	}
	if _, err := dst.HeadObject(ctx, "bkt", "k", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("after refused replicas: %v", err)
	}
	if n := countBlobs(t, blobs); n != 0 {
		t.Fatalf("%d blobs left by refused replicas", n)
	}
}
