package backupapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
)

// jobRoutes registers the operations of backup, restore and copy jobs and
// of recovery points, when the handler has a job service.
func (h *Handler) jobRoutes() {
	if h.jobs == nil {
		return
	}
	for _, r := range []struct {
		pattern string
		op      string
		fn      operation
	}{
		{"PUT /backup-jobs", "StartBackupJob", startBackupJob},
		{"PUT /backup-jobs/{$}", "StartBackupJob", startBackupJob},
		{"GET /backup-jobs/{id}", "DescribeBackupJob", describeBackupJob},
		{"POST /backup-jobs/{id}", "StopBackupJob", stopBackupJob},
		{"GET /backup-jobs/{$}", "ListBackupJobs", listBackupJobs},
		{"GET /backup-jobs", "ListBackupJobs", listBackupJobs},
		{"GET /backup-vaults/{name}/recovery-points/{$}", "ListRecoveryPointsByBackupVault", listPointsByVault},
		{"GET /backup-vaults/{name}/recovery-points", "ListRecoveryPointsByBackupVault", listPointsByVault},
		{"GET /backup-vaults/{name}/recovery-points/{arn}", "DescribeRecoveryPoint", describePoint},
		{"DELETE /backup-vaults/{name}/recovery-points/{arn}", "DeleteRecoveryPoint", deletePoint},
		{"POST /backup-vaults/{name}/recovery-points/{arn}", "UpdateRecoveryPointLifecycle", updatePointLifecycle},
		{"GET /backup-vaults/{name}/recovery-points/{arn}/restore-metadata", "GetRecoveryPointRestoreMetadata", restoreMetadata},
		{"GET /resources/{arn}/recovery-points/{$}", "ListRecoveryPointsByResource", listPointsByResource},
		{"GET /resources/{arn}/recovery-points", "ListRecoveryPointsByResource", listPointsByResource},
		{"GET /resources/{$}", "ListProtectedResources", listProtected},
		{"GET /resources", "ListProtectedResources", listProtected},
		{"GET /resources/{arn}", "DescribeProtectedResource", describeProtected},
		{"GET /backup-vaults/{name}/resources/{$}", "ListProtectedResourcesByBackupVault", listProtectedByVault},
		{"GET /backup-vaults/{name}/resources", "ListProtectedResourcesByBackupVault", listProtectedByVault},
		{"PUT /restore-jobs", "StartRestoreJob", startRestoreJob},
		{"PUT /restore-jobs/{$}", "StartRestoreJob", startRestoreJob},
		{"GET /restore-jobs/{id}", "DescribeRestoreJob", describeRestoreJob},
		{"GET /restore-jobs/{$}", "ListRestoreJobs", listRestoreJobs},
		{"GET /restore-jobs", "ListRestoreJobs", listRestoreJobs},
		{"PUT /copy-jobs", "StartCopyJob", startCopyJob},
		{"PUT /copy-jobs/{$}", "StartCopyJob", startCopyJob},
		{"GET /copy-jobs/{id}", "DescribeCopyJob", describeCopyJob},
		{"GET /copy-jobs/{$}", "ListCopyJobs", listCopyJobs},
		{"GET /copy-jobs", "ListCopyJobs", listCopyJobs},
	} {
		h.mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) { h.serve(w, req, r.op, r.fn) })
	}
}

type backupJobOut struct {
	AccountId         string
	BackupJobId       string
	BackupVaultName   string
	BackupVaultArn    string
	RecoveryPointArn  string `json:",omitempty"`
	ResourceArn       string
	ResourceName      string
	ResourceType      string
	IamRoleArn        string
	State             string
	StatusMessage     string `json:",omitempty"`
	PercentDone       string
	CreationDate      *epoch
	CompletionDate    *epoch `json:",omitempty"`
	BackupSizeInBytes int64
	BytesTransferred  int64
	IsParent          bool
	CreatedBy         *backup.CreatedBy `json:",omitempty"`
}

func (h *Handler) renderBackupJob(j *backup.BackupJob) backupJobOut {
	pct := strconv.FormatFloat(j.PercentDone(), 'f', 1, 64)
	name := h.providers.ResourceName(j.ResourceARN)
	return backupJobOut{
		AccountId: j.AccountID, BackupJobId: j.JobID, BackupVaultName: j.VaultName, BackupVaultArn: j.VaultARN,
		RecoveryPointArn: j.RecoveryPointARN, ResourceArn: j.ResourceARN, ResourceName: name, ResourceType: j.ResourceType,
		IamRoleArn: j.IAMRoleARN, State: j.State, StatusMessage: j.StatusMessage, PercentDone: pct,
		CreationDate: ts(j.CreationDate), CompletionDate: tsp(j.CompletionDate),
		BackupSizeInBytes: j.BackupSizeInBytes, BytesTransferred: j.BytesTransferred, CreatedBy: j.CreatedBy,
	}
}

func startBackupJob(ctx context.Context, c *call) (any, error) {
	var in struct {
		BackupVaultName  string
		ResourceArn      string
		IamRoleArn       string
		IdempotencyToken string
		Lifecycle        *backup.Lifecycle
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, in.BackupVaultName)); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.StartBackupJob(ctx, c.account, backup.StartBackupJobInput{
		VaultName: in.BackupVaultName, ResourceARN: in.ResourceArn, IAMRoleARN: in.IamRoleArn,
		IdempotencyToken: in.IdempotencyToken, Lifecycle: in.Lifecycle,
	})
	if err != nil {
		return nil, err
	}
	return struct {
		BackupJobId      string
		RecoveryPointArn string
		CreationDate     *epoch
		IsParent         bool
	}{j.JobID, j.RecoveryPointARN, ts(j.CreationDate), false}, nil
}

func describeBackupJob(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.DescribeBackupJob(ctx, c.account, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return c.h.renderBackupJob(j), nil
}

func deletePoint(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	return nil, c.h.jobs.DeleteRecoveryPoint(ctx, c.account, c.r.PathValue("name"), arn)
}

func stopBackupJob(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	return nil, c.h.jobs.StopBackupJob(ctx, c.account, c.r.PathValue("id"))
}

// timeQuery reads a timestamp query parameter (ISO 8601, as REST-JSON
// sends timestamps in a URI).
func (c *call) timeQuery(name string) (time.Time, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errf("InvalidParameterValueException", 400, "Invalid value %q of %s.", s, name)
	}
	return t, nil
}

func (c *call) jobFilter(stateParam string) (backup.JobFilter, error) {
	q := c.r.URL.Query()
	f := backup.JobFilter{ResourceARN: q.Get("resourceArn"), State: q.Get(stateParam), VaultName: q.Get("backupVaultName")}
	var err error
	if f.CreatedAfter, err = c.timeQuery("createdAfter"); err != nil {
		return f, err
	}
	f.CreatedBefore, err = c.timeQuery("createdBefore")
	return f, err
}

func listBackupJobs(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	f, err := c.jobFilter("state")
	if err != nil {
		return nil, err
	}
	f.ResourceType = c.r.URL.Query().Get("resourceType")
	jobs, err := c.h.jobs.ListBackupJobs(ctx, c.account, f)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, jobs, func(j *backup.BackupJob) string { return j.JobID })
	if err != nil {
		return nil, err
	}
	out := struct {
		BackupJobs []backupJobOut
		NextToken  string `json:",omitempty"`
	}{BackupJobs: []backupJobOut{}, NextToken: next}
	for _, j := range pg {
		out.BackupJobs = append(out.BackupJobs, c.h.renderBackupJob(j))
	}
	return out, nil
}

type calculatedLifecycleOut struct {
	MoveToColdStorageAt *epoch `json:",omitempty"`
	DeleteAt            *epoch `json:",omitempty"`
}

type pointOut struct {
	RecoveryPointArn     string
	BackupVaultName      string
	BackupVaultArn       string
	SourceBackupVaultArn string            `json:",omitempty"`
	CreatedBy            *backup.CreatedBy `json:",omitempty"`
	ResourceArn          string
	ResourceName         string
	ResourceType         string
	IamRoleArn           string
	Status               string
	StatusMessage        string `json:",omitempty"`
	CreationDate         *epoch
	CompletionDate       *epoch `json:",omitempty"`
	BackupSizeInBytes    int64
	Lifecycle            *backup.Lifecycle       `json:",omitempty"`
	CalculatedLifecycle  *calculatedLifecycleOut `json:",omitempty"`
	EncryptionKeyArn     string                  `json:",omitempty"`
	IsEncrypted          bool
	StorageClass         string
	VaultType            string
	IsParent             bool
}

func (h *Handler) renderPoint(p *backup.RecoveryPoint) pointOut {
	o := pointOut{
		RecoveryPointArn: p.ARN, BackupVaultName: p.VaultName, BackupVaultArn: p.VaultARN, ResourceArn: p.ResourceARN,
		ResourceName: h.providers.ResourceName(p.ResourceARN), ResourceType: p.ResourceType, IamRoleArn: p.IAMRoleARN,
		Status: p.Status, StatusMessage: p.StatusMessage, CreationDate: ts(p.CreationDate), CompletionDate: tsp(p.CompletionDate),
		BackupSizeInBytes: p.BackupSizeInBytes, Lifecycle: p.Lifecycle, EncryptionKeyArn: p.EncryptionKeyARN,
		IsEncrypted: true, StorageClass: p.StorageClass, VaultType: "BACKUP_VAULT",
		SourceBackupVaultArn: p.SourceBackupVaultARN, CreatedBy: p.CreatedBy,
	}
	if o.StorageClass == "" {
		o.StorageClass = backup.StorageWarm
	}
	if cl := p.CalculatedLifecycle; cl != nil {
		o.CalculatedLifecycle = &calculatedLifecycleOut{tsp(cl.MoveToColdStorageAt), tsp(cl.DeleteAt)}
	}
	return o
}

func listPointsByVault(ctx context.Context, c *call) (any, error) {
	name := c.r.PathValue("name")
	if err := c.authorize(ctx, c.h.cat.VaultARN(c.account, name)); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	ps, err := c.h.jobs.ListRecoveryPoints(ctx, c.account, name, q.Get("resourceArn"))
	if err != nil {
		return nil, err
	}
	if t := q.Get("resourceType"); t != "" {
		ps = slices.DeleteFunc(ps, func(p *backup.RecoveryPoint) bool { return p.ResourceType != t })
	}
	pg, next, err := page(c, ps, func(p *backup.RecoveryPoint) string { return p.ARN })
	if err != nil {
		return nil, err
	}
	out := struct {
		RecoveryPoints []pointOut
		NextToken      string `json:",omitempty"`
	}{RecoveryPoints: []pointOut{}, NextToken: next}
	for _, p := range pg {
		out.RecoveryPoints = append(out.RecoveryPoints, c.h.renderPoint(p))
	}
	return out, nil
}

func listPointsByResource(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	ps, err := c.h.jobs.ListRecoveryPoints(ctx, c.account, "", arn)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, ps, func(p *backup.RecoveryPoint) string { return p.ARN })
	if err != nil {
		return nil, err
	}
	type item struct {
		RecoveryPointArn string
		BackupVaultName  string
		ResourceName     string
		Status           string
		StatusMessage    string `json:",omitempty"`
		CreationDate     *epoch
		EncryptionKeyArn string `json:",omitempty"`
		BackupSizeBytes  int64
		IsParent         bool
		VaultType        string
	}
	out := struct {
		RecoveryPoints []item
		NextToken      string `json:",omitempty"`
	}{RecoveryPoints: []item{}, NextToken: next}
	for _, p := range pg {
		out.RecoveryPoints = append(out.RecoveryPoints, item{p.ARN, p.VaultName, c.h.providers.ResourceName(p.ResourceARN), p.Status,
			p.StatusMessage, ts(p.CreationDate), p.EncryptionKeyARN, p.BackupSizeInBytes, false, "BACKUP_VAULT"})
	}
	return out, nil
}

func describePoint(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	p, err := c.h.jobs.DescribeRecoveryPoint(ctx, c.account, c.r.PathValue("name"), arn)
	if err != nil {
		return nil, err
	}
	out := c.h.renderPoint(p)
	if p.IsContinuous() && out.StatusMessage == "" {
		// AWS's shape has no field for the window; the message says it.
		ws, err := c.h.jobs.RestorableWindows(ctx, p)
		if err != nil {
			return nil, err
		}
		out.StatusMessage = backup.DescribeWindows(ws)
	}
	return out, nil
}

func restoreMetadata(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	p, md, err := c.h.jobs.RestoreMetadata(ctx, c.account, c.r.PathValue("name"), arn)
	if err != nil {
		return nil, err
	}
	return struct {
		BackupVaultArn   string
		RecoveryPointArn string
		ResourceType     string
		RestoreMetadata  map[string]string
	}{p.VaultARN, p.ARN, p.ResourceType, md}, nil
}

func startRestoreJob(ctx context.Context, c *call) (any, error) {
	var in struct {
		RecoveryPointArn string
		Metadata         map[string]string
		IamRoleArn       string
		IdempotencyToken string
		ResourceType     string
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, in.RecoveryPointArn); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.StartRestoreJob(ctx, c.account, backup.StartRestoreJobInput{
		RecoveryPointARN: in.RecoveryPointArn, IAMRoleARN: in.IamRoleArn, IdempotencyToken: in.IdempotencyToken,
		Metadata: in.Metadata, ResourceType: in.ResourceType,
	})
	if err != nil {
		return nil, err
	}
	return struct{ RestoreJobId string }{j.JobID}, nil
}

type restoreJobOut struct {
	AccountId          string
	RestoreJobId       string
	RecoveryPointArn   string
	BackupVaultArn     string
	ResourceType       string
	IamRoleArn         string
	Status             string
	StatusMessage      string `json:",omitempty"`
	PercentDone        string
	CreationDate       *epoch
	CompletionDate     *epoch `json:",omitempty"`
	BackupSizeInBytes  int64
	CreatedResourceArn string `json:",omitempty"`
	// Restore testing's, when it started the job.
	CreatedBy               *restoreJobCreator `json:",omitempty"`
	ValidationStatus        string             `json:",omitempty"`
	ValidationStatusMessage string             `json:",omitempty"`
	DeletionStatus          string             `json:",omitempty"`
	DeletionStatusMessage   string             `json:",omitempty"`
}

// restoreJobCreator is a RestoreJobCreator.
type restoreJobCreator struct {
	RestoreTestingPlanArn string
}

func (c *call) renderRestoreJob(j *backup.RestoreJob) restoreJobOut {
	pct := "0.0"
	if j.Status == backup.RestoreCompleted {
		pct = "100.0"
	}
	var by *restoreJobCreator
	if j.RestoreTestingPlanARN != "" {
		by = &restoreJobCreator{j.RestoreTestingPlanARN}
	}
	return restoreJobOut{
		CreatedBy: by, ValidationStatus: j.ValidationStatus, ValidationStatusMessage: j.ValidationStatusMessage,
		DeletionStatus: j.DeletionStatus, DeletionStatusMessage: j.DeletionStatusMessage,
		AccountId: j.AccountID, RestoreJobId: j.JobID, RecoveryPointArn: j.RecoveryPointARN,
		BackupVaultArn: c.h.cat.VaultARN(j.AccountID, j.VaultName), ResourceType: j.ResourceType, IamRoleArn: j.IAMRoleARN,
		Status: j.Status, StatusMessage: j.StatusMessage, PercentDone: pct, CreationDate: ts(j.CreationDate),
		CompletionDate: tsp(j.CompletionDate), BackupSizeInBytes: j.BackupSizeInBytes, CreatedResourceArn: j.CreatedResourceARN,
	}
}

func describeRestoreJob(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	j, err := c.h.jobs.DescribeRestoreJob(ctx, c.account, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return c.renderRestoreJob(j), nil
}

func listRestoreJobs(ctx context.Context, c *call) (any, error) {
	if err := c.authorize(ctx, "*"); err != nil {
		return nil, err
	}
	f, err := c.jobFilter("status")
	if err != nil {
		return nil, err
	}
	jobs, err := c.h.jobs.ListRestoreJobs(ctx, c.account, f)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(c, jobs, func(j *backup.RestoreJob) string { return j.JobID })
	if err != nil {
		return nil, err
	}
	out := struct {
		RestoreJobs []restoreJobOut
		NextToken   string `json:",omitempty"`
	}{RestoreJobs: []restoreJobOut{}, NextToken: next}
	for _, j := range pg {
		out.RestoreJobs = append(out.RestoreJobs, c.renderRestoreJob(j))
	}
	return out, nil
}
