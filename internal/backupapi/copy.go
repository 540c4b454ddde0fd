package backupapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/backup"
)

type copyJobOut struct {
	AccountId                         string
	CopyJobId                         string
	SourceBackupVaultArn              string
	SourceRecoveryPointArn            string
	DestinationBackupVaultArn         string
	DestinationRecoveryPointArn       string            `json:",omitempty"`
	DestinationRecoveryPointLifecycle *backup.Lifecycle `json:",omitempty"`
	DestinationVaultType              string
	ResourceArn                       string
	ResourceName                      string
	ResourceType                      string
	CreationDate                      *epoch
	CompletionDate                    *epoch `json:",omitempty"`
	State                             string
	StatusMessage                     string `json:",omitempty"`
	BackupSizeInBytes                 int64
	IamRoleArn                        string
	CreatedBy                         *backup.CreatedBy `json:",omitempty"`
	CreatedByBackupJobId              string            `json:",omitempty"`
	IsParent                          bool
}

func (h *Handler) renderCopyJob(j *backup.CopyJob) copyJobOut {
	return copyJobOut{
		AccountId: j.AccountID, CopyJobId: j.CopyJobID, SourceBackupVaultArn: j.SourceBackupVaultARN,
		SourceRecoveryPointArn: j.SourceRecoveryPointARN, DestinationBackupVaultArn: j.DestinationBackupVaultARN,
		DestinationRecoveryPointArn: j.DestinationRecoveryPointARN, DestinationRecoveryPointLifecycle: j.Lifecycle,
		DestinationVaultType: "BACKUP_VAULT", ResourceArn: j.ResourceARN, ResourceName: h.providers.ResourceName(j.ResourceARN),
		ResourceType: j.ResourceType, CreationDate: ts(j.CreationDate), CompletionDate: tsp(j.CompletionDate),
		State: j.State, StatusMessage: j.StatusMessage, BackupSizeInBytes: j.BackupSizeInBytes, IamRoleArn: j.IAMRoleARN,
		CreatedBy: j.CreatedBy, CreatedByBackupJobId: j.CreatedByBackupJobID,
	}
}

func startCopyJob(ctx context.Context, c *call) (any, error) {
	var in struct {
		RecoveryPointArn          string
		SourceBackupVaultName     string
		DestinationBackupVaultArn string
		IamRoleArn                string
		IdempotencyToken          string
		Lifecycle                 *backup.Lifecycle
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, in.RecoveryPointArn); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.StartCopyJob(ctx, c.account, backup.StartCopyJobInput{
		RecoveryPointARN: in.RecoveryPointArn, SourceVaultName: in.SourceBackupVaultName,
		DestinationVaultARN: in.DestinationBackupVaultArn, IAMRoleARN: in.IamRoleArn,
		IdempotencyToken: in.IdempotencyToken, Lifecycle: in.Lifecycle,
	})
	if err != nil {
		return nil, err
	}
	return struct {
		CopyJobId    string
		CreationDate *epoch
		IsParent     bool
	}{j.CopyJobID, ts(j.CreationDate), false}, nil
}

func describeCopyJob(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.DescribeCopyJob(ctx, c.account, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return struct{ CopyJob copyJobOut }{c.h.renderCopyJob(j)}, nil
}

func listCopyJobs(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	f := backup.CopyJobFilter{ResourceARN: q.Get("resourceArn"), State: q.Get("state"),
		DestinationVaultARN: q.Get("destinationVaultArn"), SourceRecoveryPointARN: q.Get("sourceRecoveryPointArn")}
	var err error
	if f.CreatedAfter, err = c.timeQuery("createdAfter"); err != nil {
		return nil, err
	}
	if f.CreatedBefore, err = c.timeQuery("createdBefore"); err != nil {
		return nil, err
	}
	f.ResourceType = q.Get("resourceType")
	if a := q.Get("accountId"); a != "" && a != c.account {
		f.ResourceARN = "-"
	}
	jobs, err := c.h.jobs.ListCopyJobs(ctx, c.account, f)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, jobs, func(j *backup.CopyJob) string { return j.CopyJobID })
	if err != nil {
		return nil, err
	}
	out := struct {
		CopyJobs  []copyJobOut
		NextToken string `json:",omitempty"`
	}{CopyJobs: []copyJobOut{}, NextToken: next}
	for _, j := range pg {
		out.CopyJobs = append(out.CopyJobs, c.h.renderCopyJob(j))
	}
	return out, nil
}
