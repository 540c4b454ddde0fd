package server_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// registeredDirs backs up registered directories (type EFS) file by file
// and restores nothing: a stand-in for the region's own EFS provider, so
// that registration can be followed through the Backup API. Its store of
// registrations is the region's, bound once the region is open.
type registeredDirs struct {
	mu   sync.Mutex
	base *backup.RegisteredBase
}

func (p *registeredDirs) bind(rs *backup.Resources) {
	b := backup.NewRegisteredBase(rs, backup.TypeEFS)
	p.mu.Lock()
	p.base = &b
	p.mu.Unlock()
}

func (p *registeredDirs) b() *backup.RegisteredBase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.base
}

func (p *registeredDirs) Type() string         { return backup.TypeEFS }
func (p *registeredDirs) Owns(arn string) bool { return backup.OwnsEFS(arn) }

func (p *registeredDirs) Name(arn string) string {
	return backup.RegisteredBase{}.Name(arn)
}

func (p *registeredDirs) Describe(ctx context.Context, account, arn string) (*backup.Resource, error) {
	if b := p.b(); b != nil {
		return b.Describe(ctx, account, arn)
	}
	return nil, &backup.Error{Kind: backup.ErrNotFound, Message: "Resource " + arn + " is not registered."}
}

func (p *registeredDirs) List(ctx context.Context, account string) ([]*backup.Resource, error) {
	if b := p.b(); b != nil {
		return b.List(ctx, account)
	}
	return nil, nil
}

func (p *registeredDirs) Backup(ctx context.Context, run *backup.BackupRun) (backup.BackupResult, error) {
	reg, err := p.b().Registration(ctx, run)
	if err != nil {
		return backup.BackupResult{}, err
	}
	root := reg.Settings[backup.SettingPath]
	var files []string
	var total int64
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files, total = append(files, path), total+info.Size()
		return nil
	})
	if err == nil {
		err = run.Expect(ctx, int64(len(files)), total)
	}
	for _, path := range files {
		if err != nil {
			break
		}
		err = func() error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			return run.Put(ctx, vault.Entry{Key: filepath.ToSlash(rel), Size: st.Size()}, f)
		}()
	}
	return backup.BackupResult{}, err
}

func (p *registeredDirs) RestoreMetadata(*backup.RecoveryPoint) map[string]string {
	return map[string]string{}
}

func (p *registeredDirs) CheckRestore(context.Context, string, *backup.RecoveryPoint, map[string]string) (string, error) {
	return "", &backup.Error{Kind: backup.ErrInvalidParameter, Message: "This test's directories are not restored."}
}

func (p *registeredDirs) Restore(context.Context, *backup.RestoreRun) error {
	return &backup.Error{Kind: backup.ErrInvalidParameter, Message: "This test's directories are not restored."}
}

// TestRegisteredResourceThroughBackupAPI registers two directories and
// follows one through the aws CLI's backup commands, unchanged: EFS is a
// supported type, a registered resource is protected only once backed up
// (start-backup-job by its ARN), and a plan's selection by tag assigns the
// tagged one, not the other. The provider is a test's (registeredDirs):
// the region has no EFS provider of its own yet.
func TestRegisteredResourceThroughBackupAPI(t *testing.T) {
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	dirs := &registeredDirs{}
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.BackupProviders = []backup.Provider{dirs}
		c.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}})
	dirs.bind(r.Resources)
	withValidators(r)
	aws := servertest.AWSCLI(t, r)
	root := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}

	dir := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("bravo bravo"), 0o644))
	nightly := registerDir(t, r, root, "nightly", dir, map[string]string{"backup": "daily"}).ResourceArn
	scratch := registerDir(t, r, root, "scratch", t.TempDir(), nil).ResourceArn

	types := aws.Run("backup", "get-supported-resource-types")["ResourceTypes"].([]any)
	if !slices.Contains(types, any("EFS")) || !slices.Contains(types, any("RDS")) {
		t.Fatalf("supported resource types: %v", types)
	}
	protected := func() []string {
		var arns []string
		for _, p := range aws.Run("backup", "list-protected-resources")["Results"].([]any) {
			p := p.(map[string]any)
			if p["ResourceType"] != "EFS" {
				t.Fatalf("protected resource of type %v", p["ResourceType"])
			}
			arns = append(arns, p["ResourceArn"].(string))
		}
		return arns
	}
	if got := protected(); len(got) != 0 {
		t.Fatalf("protected before any backup: %v", got)
	}

	job := aws.Run("backup", "start-backup-job", "--backup-vault-name", "Default", "--resource-arn", nightly, "--iam-role-arn", roleARN)
	id, _ := job["BackupJobId"].(string)
	var d map[string]any
	waitFor(t, "the backup job", func() bool {
		d = aws.Run("backup", "describe-backup-job", "--backup-job-id", id)
		return d["State"] == "COMPLETED" || d["State"] == "FAILED"
	})
	if d["State"] != "COMPLETED" || d["ResourceType"] != "EFS" || d["ResourceArn"] != nightly || d["BackupSizeInBytes"] != float64(len("alpha")+len("bravo bravo")) {
		t.Fatalf("backup job: %v", d)
	}
	if got := protected(); !slices.Equal(got, []string{nightly}) {
		t.Fatalf("protected after the backup: %v, want %s", got, nightly)
	}
	// The Backup API's tags are those of vaults, plans and points, as
	// AWS's: a registration's are set when it is registered.
	aws.Fail("ResourceNotFoundException", "backup", "list-tags", "--resource-arn", nightly)

	// A plan selecting by tag: at 02:00 it backs up nightly, not scratch.
	plan := aws.Run("backup", "create-backup-plan", "--backup-plan",
		`{"BackupPlanName":"dirs","Rules":[{"RuleName":"daily","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)"}]}`)
	aws.Run("backup", "create-backup-selection", "--backup-plan-id", plan["BackupPlanId"].(string), "--backup-selection",
		`{"SelectionName":"tagged","IamRoleArn":"`+roleARN+`","ListOfTags":[{"ConditionType":"STRINGEQUALS","ConditionKey":"backup","ConditionValue":"daily"}]}`)
	clock.Store(day0.Add(2*time.Hour + 30*time.Second).UnixNano())
	var jobs []any
	waitFor(t, "the plan's backup job", func() bool {
		jobs = aws.Run("backup", "list-backup-jobs", "--by-resource-type", "EFS")["BackupJobs"].([]any)
		return len(jobs) == 2 && jobs[0].(map[string]any)["State"] == "COMPLETED" && jobs[1].(map[string]any)["State"] == "COMPLETED"
	})
	for _, j := range jobs {
		if j := j.(map[string]any); j["ResourceArn"] != nightly {
			t.Fatalf("backup job of %v", j["ResourceArn"])
		}
	}
	time.Sleep(200 * time.Millisecond) // passes of the scheduler: still none of scratch
	if l := aws.Run("backup", "list-backup-jobs", "--by-resource-arn", scratch)["BackupJobs"].([]any); len(l) != 0 {
		t.Fatalf("backup jobs of the untagged directory: %v", l)
	}
}
