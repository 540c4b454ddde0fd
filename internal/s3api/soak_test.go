package s3api_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

var soak = flag.Duration("soak", 0, "run the soak test for this long (e.g. 30s)")

// TestSoak runs concurrent multipart uploads, puts, copies, deletes and
// aborts against one versioned bucket for -soak, then checks consistency:
// every listed version is readable with the content that was acknowledged,
// nothing acknowledged is missing, and no blob is left unreferenced.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("soak test: run with -soak=30s")
	}
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "soak")
	setVersioning(t, c, "soak", "Enabled")
	var (
		mu   sync.Mutex
		want = map[string][32]byte{} // key \x00 version -> sha256
		ops  = map[string]int{}
	)
	record := func(op, key, vid string, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		ops[op]++
		if data != nil {
			want[key+"\x00"+vid] = sha256.Sum256(data)
		} else {
			delete(want, key+"\x00"+vid)
		}
	}
	// pick returns some acknowledged version and its content's hash.
	pick := func() (string, string, [32]byte) {
		mu.Lock()
		defer mu.Unlock()
		for k, sum := range want {
			i := bytes.IndexByte([]byte(k), 0)
			return k[:i], k[i+1:], sum
		}
		return "", "", [32]byte{}
	}
	deadline := time.Now().Add(*soak)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("k%02d", rng.Intn(40))
				switch op := rng.Intn(10); {
				case op < 3: // small put
					data := randomBytes(rng.Intn(100 << 10))
					out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("soak"), Key: aws.String(key), Body: bytes.NewReader(data)})
					if err == nil {
						record("put", key, aws.ToString(out.VersionId), data)
					}
				case op < 5: // multipart, sometimes abandoned
					data := randomBytes(5<<20 + rng.Intn(1<<20))
					if rng.Intn(4) == 0 {
						cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("soak"), Key: aws.String(key)})
						if err == nil {
							_, _ = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("soak"), Key: aws.String(key), UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(data[:1000])})
							mu.Lock()
							ops["abandoned"]++
							mu.Unlock()
						}
						continue
					}
					done, _, _ := multipartUpload(t, c, "soak", key, data, 5<<20, types.ChecksumAlgorithmCrc32)
					record("multipart", key, aws.ToString(done.VersionId), data)
				case op < 7: // copy an acknowledged version
					sk, sv, sum := pick()
					if sk == "" {
						continue
					}
					out, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("soak"), Key: aws.String(key + "-copy"), CopySource: aws.String("soak/" + sk + "?versionId=" + sv)})
					if err != nil {
						continue // the source may have been deleted meanwhile
					}
					mu.Lock()
					want[key+"-copy\x00"+aws.ToString(out.VersionId)] = sum
					ops["copy"]++
					mu.Unlock()
				case op < 9: // delete a version for good
					dk, dv, _ := pick()
					if dk == "" {
						continue
					}
					if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("soak"), Key: aws.String(dk), VersionId: aws.String(dv)}); err == nil {
						record("delete-version", dk, dv, nil)
					}
				default: // delete marker
					if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("soak"), Key: aws.String(key)}); err == nil {
						mu.Lock()
						ops["delete-marker"]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	// Consistency: listed versions are exactly the acknowledged ones.
	listed := 0
	pager := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String("soak")})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			listed++
			sum, ok := want[aws.ToString(v.Key)+"\x00"+aws.ToString(v.VersionId)]
			if !ok {
				t.Fatalf("listed %s %s was never acknowledged", aws.ToString(v.Key), aws.ToString(v.VersionId))
			}
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("soak"), Key: v.Key, VersionId: v.VersionId})
			if err != nil {
				t.Fatalf("listed %s unreadable: %v", aws.ToString(v.Key), err)
			}
			h := sha256.New()
			_, _ = io.Copy(h, out.Body)
			out.Body.Close()
			if !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatalf("%s %s: content differs from what was acknowledged", aws.ToString(v.Key), aws.ToString(v.VersionId))
			}
		}
	}
	if listed != len(want) {
		t.Fatalf("%d versions listed, %d acknowledged and not deleted", listed, len(want))
	}
	// Cleanup: abandoned uploads are reclaimed, and then every blob on disk
	// belongs to a version.
	aborted, err := r.Store.AbortStaleUploads(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	orphans, err := r.Store.SweepOrphans(ctx, 0)
	if err != nil || orphans != 0 {
		t.Fatalf("%d orphan blobs after cleanup (%v)", orphans, err)
	}
	t.Logf("soak %v: ops %v; %d versions checked; %d abandoned uploads reclaimed", *soak, ops, listed, aborted)
}
