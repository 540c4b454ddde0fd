package s3

import (
	"reflect"
	"testing"
)

func TestParseURL(t *testing.T) {
	for in, want := range map[string]Config{
		"s3://bkt":      {Bucket: "bkt"},
		"s3://bkt/a/b/": {Bucket: "bkt", Prefix: "a/b/"},
		"s3://bkt/p?endpoint=http://127.0.0.1:9000&region=us-west-2": {Bucket: "bkt", Prefix: "p", Endpoint: "http://127.0.0.1:9000", Region: "us-west-2"},
		"s3://bkt?virtual_hosted=true&part_size=16777216":            {Bucket: "bkt", VirtualHosted: true, PartSize: 16 << 20},
	} {
		got, err := ParseURL(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"/data/blobs", "s3:///p", "s3://ak:sk@bkt/p", "s3://bkt?colour=red", "s3://bkt?part_size=1024", "http://bkt"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
