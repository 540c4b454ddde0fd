package s3api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestAWSCLICrossAccountReplication runs the article's replication across
// two accounts and two regions with the aws CLI: account A's bucket in
// us-west-2 replicates to account B's bucket in us-east-1. Without a
// bucket policy of B's that lets A's replication role in, the version is
// FAILED, and the reason names the denied action; once B puts one, it
// replicates by itself, owned by B (AccessControlTranslation).
func TestAWSCLICrossAccountReplication(t *testing.T) {
	regions := servertest.StartRegionsWith(t, func(c *server.Config) { c.Replication.FailedRetry = 300 * time.Millisecond },
		"us-west-2", "us-east-1")
	west := regions[0]
	a := servertest.AWSCLI(t, west)
	b := a.As(servertest.OtherAccessKey, servertest.OtherSecretKey, "")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file://" + p
	}

	a.Run("s3api", "create-bucket", "--bucket", "prod-data", "--create-bucket-configuration", "LocationConstraint=us-west-2")
	a.Run("s3api", "put-bucket-versioning", "--bucket", "prod-data", "--versioning-configuration", "Status=Enabled")
	b.Run("s3api", "create-bucket", "--bucket", "backup-data-us-east-1", "--create-bucket-configuration", "LocationConstraint=us-east-1")
	b.Run("s3api", "put-bucket-versioning", "--bucket", "backup-data-us-east-1", "--versioning-configuration", "Status=Enabled")

	// Account A's replication role may also hand replicas to the
	// destination's owner.
	a.Run("iam", "put-role-policy", "--role-name", "s3-replication-role", "--policy-name", "owner-override",
		"--policy-document", write("override.json", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ObjectOwnerOverrideToBucketOwner","Resource":"*"}]}`))
	a.Run("s3api", "put-bucket-replication", "--bucket", "prod-data", "--replication-configuration", write("replication.json", `{
  "Role": "arn:aws:iam::`+servertest.AccountID+`:role/s3-replication-role",
  "Rules": [{
    "ID": "to-backup-account", "Status": "Enabled", "Prefix": "",
    "Destination": {
      "Bucket": "arn:aws:s3:::backup-data-us-east-1",
      "Account": "`+servertest.OtherAccountID+`",
      "AccessControlTranslation": {"Owner": "Destination"},
      "StorageClass": "STANDARD"
    }
  }]
}`))
	put := a.Run("s3api", "put-object", "--bucket", "prod-data", "--key", "ledger.csv", "--body", strings.TrimPrefix(write("ledger.csv", "id,amount\n1,100\n"), "file://"))
	vid := put["VersionId"].(string)

	status := func() any {
		return a.Run("s3api", "head-object", "--bucket", "prod-data", "--key", "ledger.csv")["ReplicationStatus"]
	}
	deadline := time.Now().Add(20 * time.Second)
	for status() != "FAILED" {
		if time.Now().After(deadline) {
			t.Fatalf("status %v, want FAILED while account B's bucket does not let the role in", status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The engine records the failure beside the object's status, not in
	// the same transaction: look until it shows.
	st, err := west.Replication.Status(ctx, "prod-data")
	for err == nil && (len(st) != 1 || len(st[0].Failures) != 1) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st, err = west.Replication.Status(ctx, "prod-data")
	}
	if err != nil || len(st) != 1 || len(st[0].Failures) != 1 {
		t.Fatalf("replication status: %+v %v", st, err)
	}
	f := st[0].Failures[0]
	if f.Code != "AccessDenied" || !strings.Contains(f.Reason, "s3:ReplicateObject") || !strings.Contains(f.Reason, "s3-replication-role") {
		t.Fatalf("failure %+v: want AccessDenied naming s3:ReplicateObject and the role", f)
	}

	// Account B lets A's replication role in.
	b.Run("s3api", "put-bucket-policy", "--bucket", "backup-data-us-east-1", "--policy", write("policy.json", `{
  "Version": "2012-10-17",
  "Statement": [{
    "Sid": "ReplicationFromProduction",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::`+servertest.AccountID+`:role/s3-replication-role"},
    "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ObjectOwnerOverrideToBucketOwner"],
    "Resource": "arn:aws:s3:::backup-data-us-east-1/*"
  }]
}`))
	for status() != "COMPLETED" {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("status %v after the bucket policy, want COMPLETED", status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	head := b.Run("s3api", "head-object", "--bucket", "backup-data-us-east-1", "--key", "ledger.csv", "--version-id", vid)
	if head["ReplicationStatus"] != "REPLICA" {
		t.Fatalf("replica: %v", head)
	}
	vers := b.Run("s3api", "list-object-versions", "--bucket", "backup-data-us-east-1")["Versions"].([]any)
	owner := vers[0].(map[string]any)["Owner"].(map[string]any)["ID"]
	if len(vers) != 1 || !strings.Contains(owner.(string), servertest.OtherAccountID) {
		t.Fatalf("replica owner %v, want account B (%s): %v", owner, servertest.OtherAccountID, vers)
	}
	// Account A still cannot read B's bucket: the policy lets in the
	// role's replication, nothing else.
	if out := a.Try("s3api", "get-object", "--bucket", "backup-data-us-east-1", "--key", "ledger.csv", filepath.Join(dir, "out")); out != nil {
		t.Fatalf("account A read account B's replica: %v", out)
	}
}
