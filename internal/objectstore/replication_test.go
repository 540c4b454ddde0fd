package objectstore

import (
	"context"
	"errors"
	"testing"
)

func TestBucketReplicationRecord(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.CreateBucket(ctx, "src", "owner", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"role":"arn:aws:iam::111122223333:role/r","rules":[]}`)
	if err := s.SetBucketReplication(ctx, "src", cfg); !errors.Is(err, ErrReplicationNeedsVersioning) {
		t.Fatalf("unversioned bucket: %v", err)
	}
	if err := s.SetVersioning(ctx, "src", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBucketReplication(ctx, "src", []byte("not json")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("not JSON: %v", err)
	}
	if err := s.SetBucketReplication(ctx, "src", cfg); err != nil {
		t.Fatal(err)
	}
	got, err := s.BucketReplication(ctx, "src")
	if err != nil || string(got) != string(cfg) {
		t.Fatalf("BucketReplication = %s, %v", got, err)
	}
	// The rest of the record is untouched by later updates.
	if err := s.SetVersioning(ctx, "src", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.BucketReplication(ctx, "src"); string(got) != string(cfg) {
		t.Fatalf("after SetVersioning: %s", got)
	}
	if err := s.SetBucketReplication(ctx, "src", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.BucketReplication(ctx, "src"); err != nil || got != nil {
		t.Fatalf("after removal: %s, %v", got, err)
	}
	if _, err := s.BucketReplication(ctx, "nosuch"); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
	if err := s.SetBucketReplication(ctx, "nosuch", cfg); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
}
