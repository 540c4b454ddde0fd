package s3api_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// replicationCLIConfig is the configuration of AWS's replication
// walkthrough, as given to put-bucket-replication.
const replicationCLIConfig = `{
  "Role": "arn:aws:iam::111122223333:role/service-role/s3crr_role_for_source-bucket-name",
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

// TestAWSCLIReplication runs the walkthrough's commands. Both buckets are
// in the test region until regions can name each other's buckets.
func TestAWSCLIReplication(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	aws := newAWSCLI(t, r)
	file := filepath.Join(t.TempDir(), "replication-config.json")
	if err := os.WriteFile(file, []byte(replicationCLIConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"source-bucket-name", "dest-bucket-name-us-east-1"} {
		aws.run("s3api", "create-bucket", "--bucket", b, "--create-bucket-configuration", "LocationConstraint=us-west-2")
		aws.run("s3api", "put-bucket-versioning", "--bucket", b, "--versioning-configuration", "Status=Enabled")
	}
	aws.run("s3api", "put-bucket-replication", "--bucket", "source-bucket-name", "--replication-configuration", "file://"+file)
	got := aws.run("s3api", "get-bucket-replication", "--bucket", "source-bucket-name")["ReplicationConfiguration"]
	var want map[string]any
	if err := json.Unmarshal([]byte(replicationCLIConfig), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("get-bucket-replication:\n got %v\nwant %v", got, want)
	}
	aws.run("s3api", "delete-bucket-replication", "--bucket", "source-bucket-name")
}
