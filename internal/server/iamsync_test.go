package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// A region whose IAM home does not answer refuses a key its copy lacks at
// once, and serves the keys it has: its requests do not wait on pulls from
// a home that is down.
func TestUnknownKeyRefusedAtOnceWhileIAMHomeIsDown(t *testing.T) {
	topo, err := topology.New(topology.Region{Name: "us-west-2", Endpoint: "http://" + blackHole(t)}, topology.Region{Name: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	east := servertest.Start(t, servertest.Options{Region: "us-east-1", Topology: topo})
	ctx := context.Background()
	unknown := servertest.NewClient(east.URL(), "us-east-1", "AKIANOTINTHECOPY0001", "some-secret", nil)
	known := east.Client(t)
	// Made in the store: CreateBucket would ask the home region whether
	// the name is free, and wait for it.
	if err := east.Store.CreateBucket(ctx, "east-bucket", servertest.AccountID, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	// Start's pull gave up after 5 s; the background pull now waits on
	// the home region for topology.CallTimeout.
	for range 3 {
		start := time.Now()
		_, err := unknown.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("east-bucket")})
		servertest.WantCode(t, err, "InvalidAccessKeyId", 403)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a key the copy lacks took %v to refuse while the IAM home is down", d)
		}
		if _, err := known.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("east-bucket")}); err != nil {
			t.Fatal(err)
		}
	}
}

// blackHole returns the address of a listener that accepts connections
// and never answers on them: a region that hangs.
func blackHole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
