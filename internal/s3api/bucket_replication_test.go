package s3api_test

import (
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

const replRole = "arn:aws:iam::111122223333:role/replication"

// replConfig is a V2 configuration using every element Bulwark keeps.
func replConfig() *types.ReplicationConfiguration {
	return &types.ReplicationConfiguration{Role: aws.String(replRole), Rules: []types.ReplicationRule{
		{
			ID: aws.String("logs"), Priority: aws.Int32(2), Status: types.ReplicationRuleStatusEnabled,
			Filter:                  &types.ReplicationRuleFilter{Prefix: aws.String("logs/")},
			DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusEnabled},
			SourceSelectionCriteria: &types.SourceSelectionCriteria{ReplicaModifications: &types.ReplicaModifications{Status: types.ReplicaModificationsStatusEnabled}},
			Destination: &types.Destination{
				Bucket: aws.String("arn:aws:s3:::repl-dst"), Account: aws.String(servertest.AccountID), StorageClass: types.StorageClassStandardIa,
				AccessControlTranslation: &types.AccessControlTranslation{Owner: types.OwnerOverrideDestination},
				ReplicationTime:          &types.ReplicationTime{Status: types.ReplicationTimeStatusEnabled, Time: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}},
				Metrics:                  &types.Metrics{Status: types.MetricsStatusEnabled, EventThreshold: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}},
			},
		},
		{
			ID: aws.String("gold"), Priority: aws.Int32(1), Status: types.ReplicationRuleStatusDisabled,
			Filter: &types.ReplicationRuleFilter{And: &types.ReplicationRuleAndOperator{
				Prefix: aws.String("docs/"), Tags: []types.Tag{{Key: aws.String("class"), Value: aws.String("gold")}, {Key: aws.String("team"), Value: aws.String("a")}},
			}},
			DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusDisabled},
			Destination:             &types.Destination{Bucket: aws.String("arn:aws:s3:::repl-dst2")},
		},
	}}
}

// replBuckets creates the source and destinations of replConfig, versioned,
// and an unversioned and a suspended bucket.
func replBuckets(t *testing.T, c *s3.Client) {
	for _, b := range []string{"repl-src", "repl-dst", "repl-dst2"} {
		createBucket(t, c, b)
		setVersioning(t, c, b, "Enabled")
	}
	createBucket(t, c, "repl-unversioned")
	createBucket(t, c, "repl-suspended")
	setVersioning(t, c, "repl-suspended", "Suspended")
}

func TestBucketReplication(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	replBuckets(t, c)
	src := aws.String("repl-src")

	_, err := c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: src})
	wantMessage(t, err, "ReplicationConfigurationNotFoundError", 404, "The replication configuration was not found")
	must[*s3.DeleteBucketReplicationOutput](t)(c.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: src}))

	want := replConfig()
	must[*s3.PutBucketReplicationOutput](t)(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: want}))
	got := must[*s3.GetBucketReplicationOutput](t)(c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: src}))
	if !reflect.DeepEqual(got.ReplicationConfiguration, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.ReplicationConfiguration, want)
	}

	// The raw answer carries S3's namespace; the 404 names the bucket.
	st, body, _ := do(t, r, signed(t, "GET", r.URL()+"/repl-src?replication", nil, "", nil))
	if st != 200 || !strings.Contains(body, `<ReplicationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`) {
		t.Fatalf("GET ?replication: %d %s", st, body)
	}

	// Versioning cannot be suspended under a configuration, and can once it
	// is gone.
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: src, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	wantCode(t, err, "InvalidBucketState", 409)
	setVersioning(t, c, "repl-src", "Enabled")

	// A rule without an ID gets one; a new configuration replaces the old.
	one := &types.ReplicationConfiguration{Role: aws.String(replRole), Rules: []types.ReplicationRule{{
		Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
		Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::repl-dst")},
	}}}
	must[*s3.PutBucketReplicationOutput](t)(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: one}))
	got = must[*s3.GetBucketReplicationOutput](t)(c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: src}))
	rules := got.ReplicationConfiguration.Rules
	if len(rules) != 1 || len(aws.ToString(rules[0].ID)) == 0 || rules[0].Prefix == nil || *rules[0].Prefix != "" || rules[0].Filter != nil {
		t.Fatalf("after replace: %+v", rules)
	}

	must[*s3.DeleteBucketReplicationOutput](t)(c.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: src}))
	_, err = c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: src})
	wantCode(t, err, "ReplicationConfigurationNotFoundError", 404)
	st, body, _ = do(t, r, signed(t, "GET", r.URL()+"/repl-src?replication", nil, "", nil))
	if st != 404 || !strings.Contains(body, "<BucketName>repl-src</BucketName>") {
		t.Fatalf("404 without BucketName: %s", body)
	}
	setVersioning(t, c, "repl-src", "Suspended")
	setVersioning(t, c, "repl-src", "Enabled")

	for _, op := range []func() error{
		func() error {
			_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String("nosuchbucket"), ReplicationConfiguration: one})
			return err
		},
		func() error {
			_, err := c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: aws.String("nosuchbucket")})
			return err
		},
		func() error {
			_, err := c.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: aws.String("nosuchbucket")})
			return err
		},
	} {
		wantCode(t, op(), "NoSuchBucket", 404)
	}
}

func TestBucketReplicationRefused(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	replBuckets(t, c)

	const (
		msgDMRequired  = "DeleteMarkerReplication must be specified for this version of Cross Region Replication configuration schema. Please refer to S3 Developer Guide for more information."
		msgPrioRequire = "Priority must be specified for this version of Cross Region Replication configuration schema. Please refer to S3 Developer Guide for more information."
	)
	rule0 := func(cfg *types.ReplicationConfiguration) *types.ReplicationRule { return &cfg.Rules[0] }
	cases := []struct {
		name   string
		bucket string
		change func(cfg *types.ReplicationConfiguration)
		code   string
		msg    string
	}{
		{name: "no rules", change: func(cfg *types.ReplicationConfiguration) { cfg.Rules = []types.ReplicationRule{} }, code: "MalformedXML"},
		{name: "too many rules", change: func(cfg *types.ReplicationConfiguration) {
			for i := 0; i < 1000; i++ {
				r := cfg.Rules[1]
				r.ID, r.Priority = aws.String(fmt.Sprint("r", i)), aws.Int32(int32(i+10))
				cfg.Rules = append(cfg.Rules, r)
			}
		}, code: "MalformedXML"},
		{name: "no role", change: func(cfg *types.ReplicationConfiguration) { cfg.Role = aws.String("") }, code: "MalformedXML"},
		{name: "prefix and filter", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Prefix = aws.String("a") }, code: "MalformedXML"},
		{name: "filter with prefix and tag", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Filter.Tag = &types.Tag{Key: aws.String("k"), Value: aws.String("v")}
		}, code: "MalformedXML"},
		{name: "storage class", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Destination.StorageClass = "COLD" }, code: "MalformedXML"},
		{name: "rule status", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Status = "On" }, code: "MalformedXML"},
		{name: "mixed V1 and V2", change: func(cfg *types.ReplicationConfiguration) {
			cfg.Rules[1].Filter, cfg.Rules[1].Prefix, cfg.Rules[1].DeleteMarkerReplication, cfg.Rules[1].Priority = nil, aws.String("docs/"), nil, nil
		}, code: "InvalidRequest"},
		{name: "long ID", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).ID = aws.String(strings.Repeat("i", 256)) },
			code: "InvalidArgument", msg: "ID length should not exceed allowed limit of 255"},
		{name: "duplicate ID", change: func(cfg *types.ReplicationConfiguration) { cfg.Rules[1].ID = aws.String("logs") }, code: "InvalidArgument"},
		{name: "no delete marker replication", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).DeleteMarkerReplication = nil },
			code: "InvalidRequest", msg: msgDMRequired},
		{name: "no priority", change: func(cfg *types.ReplicationConfiguration) { cfg.Rules[1].Priority = nil },
			code: "InvalidRequest", msg: msgPrioRequire},
		{name: "duplicate priority", change: func(cfg *types.ReplicationConfiguration) { cfg.Rules[1].Priority = aws.Int32(2) }, code: "InvalidRequest"},
		{name: "delete markers with tags", change: func(cfg *types.ReplicationConfiguration) {
			cfg.Rules[1].DeleteMarkerReplication.Status = types.DeleteMarkerReplicationStatusEnabled
		}, code: "InvalidRequest", msg: "Delete marker replication is not supported if any Tag filter is specified. Please refer to S3 Developer Guide for more information."},
		{name: "destination not an ARN", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Destination.Bucket = aws.String("repl-dst") }, code: "InvalidArgument"},
		{name: "destination is source", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Destination.Bucket = aws.String("arn:aws:s3:::repl-src")
		}, code: "InvalidRequest", msg: "Destination bucket cannot be the same as the source bucket."},
		{name: "owner override without account", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Destination.Account = nil }, code: "InvalidArgument"},
		{name: "account", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Destination.Account = aws.String("me") }, code: "InvalidArgument"},
		{name: "role", change: func(cfg *types.ReplicationConfiguration) { cfg.Role = aws.String("arn:aws:iam::111122223333:user/bob") }, code: "InvalidArgument"},
		{name: "replication time without metrics", change: func(cfg *types.ReplicationConfiguration) { rule0(cfg).Destination.Metrics = nil }, code: "InvalidRequest"},
		{name: "replication time minutes", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Destination.ReplicationTime.Time.Minutes = aws.Int32(5)
		}, code: "InvalidRequest"},
		{name: "event threshold minutes", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Destination.Metrics.EventThreshold.Minutes = aws.Int32(60)
		}, code: "InvalidRequest"},
		{name: "SSE-KMS without key", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).SourceSelectionCriteria.SseKmsEncryptedObjects = &types.SseKmsEncryptedObjects{Status: types.SseKmsEncryptedObjectsStatusEnabled}
		}, code: "InvalidRequest"},
		{name: "source unversioned", bucket: "repl-unversioned", code: "InvalidRequest",
			msg: "Versioning must be 'Enabled' on the bucket to apply a replication configuration"},
		{name: "source suspended", bucket: "repl-suspended", code: "InvalidRequest",
			msg: "Versioning must be 'Enabled' on the bucket to apply a replication configuration"},
		{name: "destination missing", change: func(cfg *types.ReplicationConfiguration) {
			cfg.Rules[1].Destination.Bucket = aws.String("arn:aws:s3:::repl-nosuch")
		}, code: "InvalidRequest", msg: "Destination bucket must exist."},
		{name: "destination unversioned", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Destination.Bucket = aws.String("arn:aws:s3:::repl-unversioned")
		}, code: "InvalidRequest", msg: "Destination bucket must have versioning enabled."},
		{name: "destination suspended", change: func(cfg *types.ReplicationConfiguration) {
			rule0(cfg).Destination.Bucket = aws.String("arn:aws:s3:::repl-suspended")
		}, code: "InvalidRequest", msg: "Destination bucket must have versioning enabled."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := replConfig()
			if tc.change != nil {
				tc.change(cfg)
			}
			bucket := "repl-src"
			if tc.bucket != "" {
				bucket = tc.bucket
			}
			_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String(bucket), ReplicationConfiguration: cfg})
			if tc.msg != "" {
				wantMessage(t, err, tc.code, 400, tc.msg)
			} else {
				wantCode(t, err, tc.code, 400)
			}
		})
	}
	// Nothing refused was stored.
	_, err := c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: aws.String("repl-src")})
	wantCode(t, err, "ReplicationConfigurationNotFoundError", 404)
}

// TestBucketReplicationNegativePriority checks that a rule with a negative
// priority is refused and leaves the stored configuration as it was.
func TestBucketReplicationNegativePriority(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	replBuckets(t, c)
	src := aws.String("repl-src")
	want := replConfig()
	must[*s3.PutBucketReplicationOutput](t)(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: want}))

	for _, p := range []int32{-5, -1} {
		bad := replConfig()
		bad.Rules[0].Priority = aws.Int32(p)
		_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: bad})
		wantMessage(t, err, "InvalidArgument", 400, "Priority must be a non-negative integer.")
	}
	got := must[*s3.GetBucketReplicationOutput](t)(c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: src}))
	if !reflect.DeepEqual(got.ReplicationConfiguration, want) {
		t.Fatalf("after the refusals:\n got %+v\nwant %+v", got.ReplicationConfiguration, want)
	}

	// Zero is the lowest priority S3 takes.
	zero := replConfig()
	zero.Rules[1].Priority = aws.Int32(0)
	must[*s3.PutBucketReplicationOutput](t)(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: zero}))
}

// TestBucketReplicationWire covers what an SDK never sends: a body without
// Content-MD5 or checksum, a wrong digest, and broken XML.
func TestBucketReplicationWire(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	replBuckets(t, c)
	u := r.URL() + "/repl-src?replication"
	doc := []byte(`<ReplicationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Role>` + replRole + `</Role>` +
		`<Rule><ID>all</ID><Status>Enabled</Status><Prefix></Prefix><Destination><Bucket>arn:aws:s3:::repl-dst</Bucket></Destination></Rule>` +
		`</ReplicationConfiguration>`)
	md5sum := func(b []byte) string { s := md5.Sum(b); return base64.StdEncoding.EncodeToString(s[:]) }

	st, body, _ := do(t, r, signed(t, "PUT", u, doc, "", nil))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5sum([]byte("other"))}))
	wantXMLError(t, st, body, 400, "BadDigest")
	broken := []byte("<ReplicationConfiguration><Role>x</Role><Rule>")
	st, body, _ = do(t, r, signed(t, "PUT", u, broken, "", map[string]string{"Content-MD5": md5sum(broken)}))
	wantXMLError(t, st, body, 400, "MalformedXML")
	notInt := []byte(strings.Replace(string(doc), "<ID>all</ID>", "<ID>all</ID><Priority>high</Priority>", 1))
	st, body, _ = do(t, r, signed(t, "PUT", u, notInt, "", map[string]string{"Content-MD5": md5sum(notInt)}))
	wantXMLError(t, st, body, 400, "MalformedXML")

	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5sum(doc)}))
	if st != 200 {
		t.Fatalf("PUT with Content-MD5: %d %s", st, body)
	}
	st, body, _ = do(t, r, signed(t, "GET", u, nil, "", nil))
	if st != 200 || !strings.Contains(body, "<Prefix></Prefix>") || strings.Contains(body, "<Filter>") {
		t.Fatalf("GET: %d %s", st, body)
	}
	st, _, _ = do(t, r, signed(t, "DELETE", u, nil, "", nil))
	if st != 204 {
		t.Fatalf("DELETE: %d", st)
	}
}
