package s3api_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// replicationCLIConfig is the design article's replication-config.json,
// with the account ID filled in.
const replicationCLIConfig = `{
"Role": "arn:aws:iam::111122223333:role/s3-replication-role",
"Rules": [
{
"ID": "replicate-all-objects",
"Status": "Enabled",
"Prefix": "",
"Destination": {
"Bucket": "arn:aws:s3:::dest-bucket-name-us-east-1",
"StorageClass": "STANDARD"
}
}
]
}`

// TestAWSCLIReplication runs the design article's commands verbatim (but
// for --endpoint-url and the account ID) against a two-region deployment:
// the destination bucket lives in us-east-1, created through the us-west-2
// endpoint; an object put to the source appears in the destination with the
// same version ID and content, COMPLETED on the source and REPLICA on the
// replica.
func TestAWSCLIReplication(t *testing.T) {
	regions := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	aws := servertest.AWSCLI(t, west)
	dir := t.TempDir()
	file := filepath.Join(dir, "replication-config.json")
	if err := os.WriteFile(file, []byte(replicationCLIConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	aws.Run("s3api", "create-bucket", "--bucket", "source-bucket-name", "--create-bucket-configuration", "LocationConstraint=us-west-2")
	aws.Run("s3api", "create-bucket", "--bucket", "dest-bucket-name-us-east-1", "--create-bucket-configuration", "LocationConstraint=us-east-1")
	// S3 shows us-east-1 as a null LocationConstraint.
	if loc := aws.Run("s3api", "get-bucket-location", "--bucket", "dest-bucket-name-us-east-1")["LocationConstraint"]; loc != nil {
		t.Fatalf("destination bucket in %v, want us-east-1 (null)", loc)
	}
	if _, err := east.Store.Bucket(ctx, "dest-bucket-name-us-east-1"); err != nil {
		t.Fatalf("us-east-1 does not hold the destination bucket: %v", err)
	}

	// The article's commands.
	aws.Run("s3api", "put-bucket-versioning", "--bucket", "source-bucket-name", "--versioning-configuration", "Status=Enabled")
	aws.Run("s3api", "put-bucket-versioning", "--bucket", "dest-bucket-name-us-east-1", "--versioning-configuration", "Status=Enabled")
	aws.Run("s3api", "put-bucket-replication", "--bucket", "source-bucket-name", "--replication-configuration", "file://"+file)

	body := filepath.Join(dir, "report.csv")
	if err := os.WriteFile(body, []byte("quarter,revenue\nq3,42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	put := aws.Run("s3api", "put-object", "--bucket", "source-bucket-name", "--key", "reports/q3.csv", "--body", body)
	vid, _ := put["VersionId"].(string)
	if vid == "" {
		t.Fatalf("put-object: %v", put)
	}
	var head map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		head = aws.Try("s3api", "head-object", "--bucket", "dest-bucket-name-us-east-1", "--key", "reports/q3.csv", "--version-id", vid)
		if head != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if head == nil || head["ReplicationStatus"] != "REPLICA" || head["ETag"] != put["ETag"] {
		t.Fatalf("replica head-object: %v (put %v)", head, put)
	}
	out := filepath.Join(dir, "replica.csv")
	aws.Run("s3api", "get-object", "--bucket", "dest-bucket-name-us-east-1", "--key", "reports/q3.csv", "--version-id", vid, out)
	if got, _ := os.ReadFile(out); string(got) != "quarter,revenue\nq3,42\n" {
		t.Fatalf("replica content %q", got)
	}
	for time.Now().Before(deadline) {
		if aws.Run("s3api", "head-object", "--bucket", "source-bucket-name", "--key", "reports/q3.csv")["ReplicationStatus"] == "COMPLETED" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := aws.Run("s3api", "head-object", "--bucket", "source-bucket-name", "--key", "reports/q3.csv")["ReplicationStatus"]; st != "COMPLETED" {
		t.Fatalf("source status %v, want COMPLETED", st)
	}

	got := aws.Run("s3api", "get-bucket-replication", "--bucket", "source-bucket-name")["ReplicationConfiguration"]
	var want map[string]any
	if err := json.Unmarshal([]byte(replicationCLIConfig), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("get-bucket-replication:\n got %v\nwant %v", got, want)
	}
	aws.Run("s3api", "delete-bucket-replication", "--bucket", "source-bucket-name")
}
