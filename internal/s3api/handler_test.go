package s3api

import "testing"

func TestActionNames(t *testing.T) {
	for _, tc := range []struct {
		op        string
		versioned bool
		want      string
	}{
		{"GetObject", false, "GetObject"}, {"GetObject", true, "GetObjectVersion"},
		{"HeadObject", true, "GetObjectVersion"}, {"DeleteObject", true, "DeleteObjectVersion"},
		{"ListObjectsV2", false, "ListBucket"}, {"CopyObject", false, "PutObject"},
		{"GetBucketCors", false, "GetBucketCORS"}, {"PutObjectTagging", true, "PutObjectVersionTagging"},
		{"ListObjectVersions", false, "ListBucketVersions"},
	} {
		if got := actionFor(tc.op, tc.versioned); got != tc.want {
			t.Errorf("actionFor(%s, %v) = %s, want %s", tc.op, tc.versioned, got, tc.want)
		}
	}
}
