package rds_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/cli"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// tieredPlan is the article's tiered approach as one plan: a daily rule
// kept 30 days, copied to us-east-1 and kept there 90 days.
const tieredPlan = `{"BackupPlanName":"tiered","Rules":[{"RuleName":"daily","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:111122223333:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`

// TestTieredPlan is the article's "configure AWS Backup with 30-day
// retention for S3, RDS, DynamoDB … cross-region backup copies … to the
// secondary region" for everything Bulwark backs up: one plan whose
// selection takes, by tag, a bucket, a PostgreSQL cluster, a MariaDB
// database, an SQLite file and a directory — registered with `bulwark
// resource add`, planned with the aws CLI. Once the clock passes 02:00
// each has a COMPLETED recovery point in us-west-2, kept 30 days, and its
// copy in us-east-1, kept 90; an untagged directory has neither.
func TestTieredPlan(t *testing.T) {
	ctx := context.Background()
	pg := rds.StartTestCluster(t, rds.TestClusterOptions{})
	pg.Exec(t, "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 1000) g")
	maria := machineMariaDB(t)
	shop := maria.database(t, "tiered")
	maria.exec(t, shop, "CREATE TABLE cart (id INT PRIMARY KEY, item VARCHAR(40)) ENGINE=InnoDB; INSERT INTO cart VALUES (1, 'lamp'), (2, 'desk')")
	servertest.RequireTool(t, "sqlite3")
	dir := t.TempDir()
	appdb := filepath.Join(dir, "app.db")
	if out, err := exec.Command("sqlite3", appdb, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('one'), ('two');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, out)
	}
	docs := filepath.Join(dir, "docs")
	scratch := filepath.Join(dir, "scratch")
	for _, d := range []string{docs, scratch} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", "readme.txt"), []byte("documentation"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	regions := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	awsWest, awsEast := servertest.AWSCLI(t, west), servertest.AWSCLI(t, east)

	s3c := west.Client(t)
	_, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("assets"),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraintUsWest2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("assets"),
		Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("tier"), Value: aws.String("critical")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("assets"), Key: aws.String("logo.svg"), Body: strings.NewReader("<svg/>")}); err != nil {
		t.Fatal(err)
	}

	// Registered as a user would, with `bulwark resource add`.
	env := map[string]string{"BULWARK_ENDPOINT": west.URL(), "AWS_ACCESS_KEY_ID": servertest.AccessKey, "AWS_SECRET_ACCESS_KEY": servertest.SecretKey}
	add := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		m := &cli.Main{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(""), Getenv: func(k string) string { return env[k] }}
		if code := m.Run(ctx, append([]string{"resource", "add", "--json"}, args...)); code != 0 {
			t.Fatalf("bulwark resource add %v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
		var arn string
		for _, f := range strings.Split(out.String(), "\"") {
			if strings.HasPrefix(f, "arn:aws:") {
				arn = f
				break
			}
		}
		return arn
	}
	critical := []string{"--tag", "tier=critical"}
	want := map[string]string{ // ARN → resource type
		"arn:aws:s3:::assets": "S3",
		add(append([]string{"--type", "RDS", "--engine", "postgres", "--name", "orders", "--host", "127.0.0.1", "--port", pg.PortString(), "--user", "postgres"}, critical...)...):     "RDS",
		add(append([]string{"--type", "RDS", "--engine", "mariadb", "--name", "shop", "--host", "127.0.0.1", "--port", "3306", "--user", "root", "--database", shop}, critical...)...): "RDS",
		add(append([]string{"--type", "RDS", "--engine", "sqlite", "--name", "appdb", "--path", appdb}, critical...)...):                                                               "RDS",
		add(append([]string{"--type", "EFS", "--name", "docs", "--path", docs}, critical...)...):                                                                                       "EFS",
	}
	untagged := add("--type", "EFS", "--name", "scratch", "--path", scratch)
	if len(want) != 5 || untagged == "" {
		t.Fatalf("registered %v and %q", want, untagged)
	}

	planID := awsWest.Run("backup", "create-backup-plan", "--backup-plan", tieredPlan)["BackupPlanId"].(string)
	awsWest.Run("backup", "create-backup-selection", "--backup-plan-id", planID, "--backup-selection",
		`{"SelectionName":"critical","IamRoleArn":"arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole","ListOfTags":[{"ConditionType":"STRINGEQUALS","ConditionKey":"tier","ConditionValue":"critical"}]}`)
	clock.Store(day0.Add(2*time.Hour + 30*time.Second).UnixNano())

	ended := func(jobs []any, key string, done ...string) bool {
		for _, j := range jobs {
			if !slices.Contains(done, j.(map[string]any)[key].(string)) {
				return false
			}
		}
		return true
	}
	var jobs []any
	waitFor(t, 5*time.Minute, "the plan's five backups", func() bool {
		jobs = awsWest.Run("backup", "list-backup-jobs")["BackupJobs"].([]any)
		return len(jobs) >= 5 && ended(jobs, "State", "COMPLETED", "FAILED", "ABORTED", "EXPIRED")
	})
	backedUp := map[string]string{}
	for _, j := range jobs {
		j := j.(map[string]any)
		if j["State"] != "COMPLETED" {
			t.Fatalf("backup of %v: %v %v", j["ResourceArn"], j["State"], j["StatusMessage"])
		}
		backedUp[j["ResourceArn"].(string)] = j["ResourceType"].(string)
	}
	if fmt.Sprint(backedUp) != fmt.Sprint(want) {
		t.Fatalf("backed up %v\nwant %v", backedUp, want)
	}

	points := awsWest.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)
	if len(points) != 5 {
		t.Fatalf("us-west-2 holds %d points, want 5", len(points))
	}
	for _, p := range points {
		p := p.(map[string]any)
		created := isoTime(t, p["CreationDate"])
		if p["Status"] != "COMPLETED" || !isoTime(t, p["CalculatedLifecycle"].(map[string]any)["DeleteAt"]).Equal(created.AddDate(0, 0, 30)) {
			t.Fatalf("us-west-2 point: %v", p)
		}
	}

	var copies []any
	waitFor(t, 5*time.Minute, "the five copies to us-east-1", func() bool {
		copies = awsWest.Run("backup", "list-copy-jobs")["CopyJobs"].([]any)
		return len(copies) >= 5 && ended(copies, "State", "COMPLETED", "FAILED")
	})
	for _, c := range copies {
		if c := c.(map[string]any); c["State"] != "COMPLETED" {
			t.Fatalf("copy of %v: %v %v", c["ResourceArn"], c["State"], c["StatusMessage"])
		}
	}
	copied := map[string]string{}
	for _, p := range awsEast.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any) {
		p := p.(map[string]any)
		created := isoTime(t, p["CreationDate"])
		if p["Status"] != "COMPLETED" || !isoTime(t, p["CalculatedLifecycle"].(map[string]any)["DeleteAt"]).Equal(created.AddDate(0, 0, 90)) {
			t.Fatalf("us-east-1 copy: %v", p)
		}
		copied[p["ResourceArn"].(string)] = p["ResourceType"].(string)
	}
	if fmt.Sprint(copied) != fmt.Sprint(want) {
		t.Fatalf("copied to us-east-1 %v\nwant %v", copied, want)
	}
	if l := awsWest.Run("backup", "list-backup-jobs", "--by-resource-arn", untagged)["BackupJobs"].([]any); len(l) != 0 {
		t.Fatalf("the untagged directory was backed up: %v", l)
	}
}

// isoTime reads a timestamp the aws CLI printed: ISO 8601 (CLI v2), or
// seconds since the epoch (CLI v1).
func isoTime(t *testing.T, v any) time.Time {
	t.Helper()
	if f, ok := v.(float64); ok {
		return time.UnixMilli(int64(math.Round(f * 1000))).UTC()
	}
	tm, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v))
	if err != nil {
		t.Fatalf("timestamp %v: %v", v, err)
	}
	return tm.UTC()
}
