package s3api_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

func ids(keys ...string) []types.ObjectIdentifier {
	var out []types.ObjectIdentifier
	for _, k := range keys {
		out = append(out, types.ObjectIdentifier{Key: aws.String(k)})
	}
	return out
}

// deletedString renders a Deleted entry as key/version/marker/marker-version.
func deletedString(d types.DeletedObject) string {
	return fmt.Sprintf("%s/%s/%v/%s", aws.ToString(d.Key), aws.ToString(d.VersionId), aws.ToBool(d.DeleteMarker), aws.ToString(d.DeleteMarkerVersionId))
}

func TestDeleteObjects(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	for _, mode := range versioningModes {
		t.Run(fmt.Sprintf("versioning=%q", mode), func(t *testing.T) {
			bucket := "multi-" + strings.ToLower(string(mode)+"x")
			bucketIn(t, c, bucket, mode)
			b := aws.String(bucket)
			var puts []*s3.PutObjectOutput
			for _, k := range []string{"a", "b", "dir/c & <d>"} {
				puts = append(puts, must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(k)})))
			}
			out := must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{
				Objects: append(ids("a", "dir/c & <d>", "never-existed"), types.ObjectIdentifier{Key: aws.String("b"), VersionId: aws.String("bogus")}),
			}}))
			if len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "b" || aws.ToString(out.Errors[0].Code) != "NoSuchVersion" ||
				aws.ToString(out.Errors[0].VersionId) != "bogus" || aws.ToString(out.Errors[0].Message) != "The specified version does not exist." {
				t.Fatalf("errors %+v", out.Errors)
			}
			var got []string
			for _, d := range out.Deleted {
				got = append(got, deletedString(d))
			}
			var lv *s3.ListObjectVersionsOutput
			switch mode {
			case "":
				if fmt.Sprint(got) != "[a//false/ dir/c & <d>//false/ never-existed//false/]" {
					t.Fatalf("deleted %v", got)
				}
				_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("a")})
				wantCode(t, err, "NotFound", 404)
			case types.BucketVersioningStatusSuspended:
				if fmt.Sprint(got) != "[a//true/null dir/c & <d>//true/null never-existed//true/null]" {
					t.Fatalf("deleted %v", got)
				}
			default:
				lv = must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}))
				markers := map[string]string{}
				for _, m := range lv.DeleteMarkers {
					markers[aws.ToString(m.Key)] = aws.ToString(m.VersionId)
				}
				want := fmt.Sprintf("[a//true/%s dir/c & <d>//true/%s never-existed//true/%s]", markers["a"], markers["dir/c & <d>"], markers["never-existed"])
				if fmt.Sprint(got) != want || len(markers) != 3 {
					t.Fatalf("deleted %v, want %v", got, want)
				}
				// By version: a version, a delete marker, a well-formed ID
				// that names nothing. Quiet leaves out what succeeded.
				out = must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{
					Objects: []types.ObjectIdentifier{
						{Key: aws.String("a"), VersionId: puts[0].VersionId},
						{Key: aws.String("never-existed"), VersionId: aws.String(markers["never-existed"])},
						{Key: aws.String("b"), VersionId: aws.String("0036000000000000000000000A")},
					},
				}}))
				got = got[:0]
				for _, d := range out.Deleted {
					got = append(got, deletedString(d))
				}
				want = fmt.Sprintf("[a/%s/false/ never-existed/%[2]s/true/%[2]s b/0036000000000000000000000A/false/]", *puts[0].VersionId, markers["never-existed"])
				if fmt.Sprint(got) != want || len(out.Errors) != 0 {
					t.Fatalf("deleted by version %v, want %v (errors %+v)", got, want, out.Errors)
				}
				quiet := must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{
					Objects: []types.ObjectIdentifier{{Key: aws.String("b"), VersionId: puts[1].VersionId}}, Quiet: aws.Bool(true),
				}}))
				if len(quiet.Deleted) != 0 || len(quiet.Errors) != 0 {
					t.Fatalf("quiet: %+v %+v", quiet.Deleted, quiet.Errors)
				}
				_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("b"), VersionId: puts[1].VersionId})
				wantCode(t, err, "NoSuchVersion", 404)
			}
			if mode != types.BucketVersioningStatusEnabled {
				if body, _ := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: aws.String("b")}); body != "b" {
					t.Fatalf("b after a failed delete: %q", body)
				}
			}
		})
	}
}

// putMany writes n keys concurrently and returns their version IDs.
func putMany(t *testing.T, c *s3.Client, bucket string, keys []string) map[string]string {
	t.Helper()
	var mu sync.Mutex
	versions := map[string]string{}
	var wg sync.WaitGroup
	work := make(chan string)
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for k := range work {
				out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(k)})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				mu.Lock()
				versions[k] = aws.ToString(out.VersionId)
				mu.Unlock()
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return versions
}

// TestDeleteObjectsThousand deletes 1,000 keys at a time, in verbose and in
// quiet mode, mixing deletes by version, delete markers and missing keys.
func TestDeleteObjectsThousand(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "thousand", types.BucketVersioningStatusEnabled)
	var keys []string
	for i := range 1200 {
		keys = append(keys, fmt.Sprintf("k%04d", i))
	}
	versions := putMany(t, c, "thousand", keys)
	before := must[objectstore.FeedStats](t)(r.Store.FeedStats(ctx))

	for _, quiet := range []bool{false, true} {
		// 250 delete markers, 250 deletes by version, 400 missing keys and
		// 100 malformed version IDs.
		base := 0
		if quiet {
			base = 500
		}
		var objs []types.ObjectIdentifier
		for i := range 250 {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(keys[base+i])})
			k := keys[base+250+i]
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(k), VersionId: aws.String(versions[k])})
		}
		for i := range 400 {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("missing-%v-%d", quiet, i))})
		}
		for i := range 100 {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(keys[1100+i]), VersionId: aws.String("not-a-version")})
		}
		start := time.Now()
		out := must[*s3.DeleteObjectsOutput](t)(c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("thousand"), Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(quiet)}}))
		t.Logf("quiet=%v: 1,000 keys in %v", quiet, time.Since(start))
		wantDeleted := 900
		if quiet {
			wantDeleted = 0
		}
		if len(out.Deleted) != wantDeleted || len(out.Errors) != 100 {
			t.Fatalf("quiet=%v: %d deleted, %d errors", quiet, len(out.Deleted), len(out.Errors))
		}
		markers, removed := 0, 0
		for _, d := range out.Deleted {
			switch {
			case aws.ToBool(d.DeleteMarker) && aws.ToString(d.DeleteMarkerVersionId) != "" && d.VersionId == nil:
				markers++
			case aws.ToString(d.VersionId) != "" && !aws.ToBool(d.DeleteMarker):
				removed++
			}
		}
		if !quiet && (markers != 650 || removed != 250) { // missing keys get markers too
			t.Fatalf("%d markers, %d versions removed", markers, removed)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchVersion" || aws.ToString(e.VersionId) != "not-a-version" {
				t.Fatalf("error %+v", e)
			}
		}
	}
	// The bucket now holds 500 keys behind markers, 500 whose only version
	// is gone, and 200 untouched.
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("thousand")})
	for p.HasMorePages() {
		n += len(must[*s3.ListObjectsV2Output](t)(p.NextPage(ctx)).Contents)
	}
	if n != 200 {
		t.Fatalf("%d keys left, want 200", n)
	}
	after := must[objectstore.FeedStats](t)(r.Store.FeedStats(ctx))
	if got := after.Last - before.Last; got != 2*(250+250+400) {
		t.Fatalf("%d change records, want %d", got, 2*(250+250+400))
	}
}

func TestDeleteObjectsErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "delerrs")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("delerrs"), Key: aws.String("keep"), Body: strings.NewReader("x")}))
	var many []string
	for i := range 1001 {
		many = append(many, fmt.Sprint("k", i))
	}
	_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("delerrs"), Delete: &types.Delete{Objects: ids(many...)}})
	wantCode(t, err, "MalformedXML", 400)
	_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("nobucket"), Delete: &types.Delete{Objects: ids("a")}})
	wantCode(t, err, "NoSuchBucket", 404)
	other := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, r.HTTPClient(t))
	_, err = other.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("delerrs"), Delete: &types.Delete{Objects: ids("keep")}})
	wantCode(t, err, "AccessDenied", 403)

	u := r.URL() + "/delerrs?delete"
	doc := []byte("<Delete><Object><Key>keep</Key></Object></Delete>")
	st, body, _ := do(t, r, signed(t, "POST", u, doc, "", nil))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	if !strings.Contains(body, "Missing required header for this request: Content-MD5") {
		t.Fatalf("missing Content-MD5: %s", body)
	}
	st, body, _ = do(t, r, signed(t, "POST", u, doc, "", map[string]string{"Content-MD5": md5Header([]byte("other"))}))
	wantXMLError(t, st, body, 400, "BadDigest")
	st, body, _ = do(t, r, signed(t, "POST", u, doc, "", map[string]string{"x-amz-checksum-sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}))
	wantXMLError(t, st, body, 400, "BadDigest")
	for _, bad := range []string{"<Delete></Delete>", "<Delete><Object><VersionId>x</VersionId></Object></Delete>", "<Delete><Object><Key></Key></Object></Delete>", "<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>", "<Delete>"} {
		st, body, _ = do(t, r, signed(t, "POST", u, []byte(bad), "", map[string]string{"Content-MD5": md5Header([]byte(bad))}))
		wantXMLError(t, st, body, 400, "MalformedXML")
	}
	if body, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("delerrs"), Key: aws.String("keep")}); body != "x" {
		t.Fatalf("refused requests deleted the key: %q", body)
	}
	// Content-MD5 alone is enough, with or without the namespace.
	doc = []byte(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>keep</Key></Object></Delete>`)
	st, body, _ = do(t, r, signed(t, "POST", u, doc, "", map[string]string{"Content-MD5": md5Header(doc)}))
	if st != 200 || strings.Contains(body, "<Deleted>") || !strings.Contains(body, "<DeleteResult") {
		t.Fatalf("quiet delete with Content-MD5: %d %s", st, body)
	}
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("delerrs"), Key: aws.String("keep")})
	wantCode(t, err, "NotFound", 404)
}
