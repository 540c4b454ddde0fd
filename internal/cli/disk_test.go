package cli

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

func TestDiskFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want server.DiskConfig
		err  string
	}{
		{nil, server.DiskConfig{}, ""},
		{[]string{"--disk-floor", "2GiB"}, server.DiskConfig{Floor: 2 << 30}, ""},
		{[]string{"--disk-floor", "5%"}, server.DiskConfig{FloorPercent: 5}, ""},
		{[]string{"--disk-floor", "0.5 %"}, server.DiskConfig{FloorPercent: 0.5}, ""},
		{[]string{"--disk-floor", "0"}, server.DiskConfig{Floor: 1}, ""},
		{[]string{"--disk-ballast", "64MiB", "--disk-meta-reserve", "16MiB"}, server.DiskConfig{Ballast: 64 << 20, MetaReserve: 16 << 20}, ""},
		{[]string{"--disk-ballast", "0", "--disk-meta-reserve", "0"}, server.DiskConfig{Ballast: -1, MetaReserve: -1}, ""},
		{[]string{"--disk-floor", "100%"}, server.DiskConfig{}, "a percentage must be above 0 and below 100"},
		{[]string{"--disk-floor", "x%"}, server.DiskConfig{}, "a percentage must be above 0 and below 100"},
		{[]string{"--disk-ballast", "12XB"}, server.DiskConfig{}, "-disk-ballast: size \"12XB\": unknown unit"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		rf := addRunFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := rf.parseDisk()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("%v: got %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		got := *rf.disk
		if err != nil || got.Floor != tc.want.Floor || got.FloorPercent != tc.want.FloorPercent ||
			got.Ballast != tc.want.Ballast || got.MetaReserve != tc.want.MetaReserve {
			t.Fatalf("%v: %+v, %v; want %+v", tc.args, *rf.disk, err, tc.want)
		}
	}
}

// TestServeDiskFloor: the flag reaches the region. No test disk has 99 %
// of itself free, so every write is refused, with the cause.
func TestServeDiskFloor(t *testing.T) {
	env := map[string]string{"BULWARK_ACCESS_KEY": servertest.AccessKey, "BULWARK_SECRET_KEY": servertest.SecretKey, "BULWARK_ACCOUNT_ID": servertest.AccountID}
	urls, _, stop := startMain(t, env, "serve", "--region", "us-west-2", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--disk-floor", "99%")
	defer stop()
	c := servertest.NewClient(urls["us-west-2"], "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("floor")}); err != nil {
		t.Fatalf("creating a bucket is no new data: %v", err)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("floor"), Key: aws.String("k"), Body: bytes.NewReader([]byte("data"))})
	servertest.WantCode(t, err, "ServiceUnavailable", 503)
	if !strings.Contains(err.Error(), "region us-west-2 is low on disk space") {
		t.Fatalf("refusal: %v", err)
	}
}
