package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// Copy jobs copy a recovery point into another vault: of this region, or
// of another region of the deployment through Remote. The copy is a
// transfer (vault.Transfer): the destination receives only the chunks it
// lacks. A copy job is retried until it completes — a destination region
// that is down for hours only delays it — unless the destination refuses
// it for a reason retrying will not mend (no such vault, a vault lock the
// copy's retention breaks). Copy jobs outlive a restart: those not ended
// start again with the service.

// spaceCopyJobs holds the copy jobs: account/jobID → CopyJob.
const spaceCopyJobs = "backup-copy-jobs"

// Copy job states, as AWS Backup names them.
const (
	CopyCreated   = "CREATED"
	CopyRunning   = "RUNNING"
	CopyCompleted = "COMPLETED"
	CopyFailed    = "FAILED"
)

// Retry of a copy whose destination failed: from copyRetryMin doubling to
// the service's CopyRetryMax.
const (
	copyRetryMin        = time.Second
	DefaultCopyRetryMax = 30 * time.Second
)

// CopyJob is a copy of a recovery point into another vault.
type CopyJob struct {
	AccountID                   string
	CopyJobID                   string
	SourceBackupVaultName       string
	SourceBackupVaultARN        string
	SourceRecoveryPointARN      string
	DestinationBackupVaultARN   string
	DestinationRecoveryPointARN string
	ResourceARN                 string
	ResourceType                string
	IAMRoleARN                  string
	IdempotencyToken            string `json:",omitempty"`
	State                       string
	StatusMessage               string `json:",omitempty"`
	CreationDate                time.Time
	CompletionDate              *time.Time `json:",omitempty"`
	BackupSizeInBytes           int64
	// BytesTransferred is the data sent: the chunks the destination
	// lacked.
	BytesTransferred int64
	Lifecycle        *Lifecycle `json:",omitempty"`
	CreatedBy        *CreatedBy `json:",omitempty"`
	// CreatedByBackupJobID is the backup job whose copy action this is.
	CreatedByBackupJobID string `json:",omitempty"`
	// Attempts counts the transfers tried.
	Attempts int
	// destination, parsed from DestinationBackupVaultARN.
	DestRegion, DestAccount, DestVault string
	// DestPointID names the copy in the destination vault.
	DestPointID string
	// Gateway names the process of the region that runs the copy, when
	// several serve it (ServiceConfig.Gateway).
	Gateway string `json:",omitempty"`
}

// CopyIn is what a destination needs to receive a copy: where it goes and
// the record it keeps of it.
type CopyIn struct {
	AccountID string
	VaultName string
	PointID   string
	// Point is the destination's record of the copy; the destination fills
	// in its ARN, vault, status and sizes.
	Point RecoveryPoint
	// Continuous, when set, carries a piece of the continuous point
	// PointID names, or its windows (continuous_copy.go).
	Continuous *ContinuousIn `json:",omitempty"`
}

// Remote opens copies into vaults of other regions (the server carries
// them over its peer API). A call the destination refuses returns a *Error;
// any other error is taken as passing (the region is down, say) and the
// copy is retried.
type Remote interface {
	BeginCopy(ctx context.Context, region string, in CopyIn) (vault.Target, *RecoveryPoint, error)
}

// StartCopyJobInput describes a copy.
type StartCopyJobInput struct {
	RecoveryPointARN    string
	SourceVaultName     string
	DestinationVaultARN string
	IAMRoleARN          string
	IdempotencyToken    string
	Lifecycle           *Lifecycle
	// Set for a plan's copy action.
	CreatedBy   *CreatedBy
	BackupJobID string
}

// parseVaultARN splits arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME.
func parseVaultARN(arn string) (region, account, name string, ok bool) {
	if !vaultARNRE.MatchString(arn) {
		return "", "", "", false
	}
	parts := strings.SplitN(arn, ":", 7)
	return parts[3], parts[4], strings.TrimPrefix(parts[5]+":"+parts[6], "backup-vault:"), true
}

// StartCopyJob records a copy job and starts it.
func (s *Service) StartCopyJob(ctx context.Context, account string, in StartCopyJobInput) (*CopyJob, error) {
	j, earlier, err := s.newCopyJob(ctx, account, in)
	if err != nil || earlier {
		return j, err // earlier: a call with the same token made it
	}
	snapshot := *j
	if !s.start(func(ctx context.Context) { s.runCopy(ctx, j) }) {
		return nil, vault.ErrClosed
	}
	return &snapshot, nil
}

// newCopyJob records a new copy job, or returns the one an earlier call
// with the same idempotency token made (earlier true).
func (s *Service) newCopyJob(ctx context.Context, account string, in StartCopyJobInput) (j *CopyJob, earlier bool, err error) {
	switch {
	case in.RecoveryPointARN == "":
		return nil, false, errorf(ErrMissingParameter, "Missing required parameter RecoveryPointArn.")
	case in.SourceVaultName == "":
		return nil, false, errorf(ErrMissingParameter, "Missing required parameter SourceBackupVaultName.")
	case in.DestinationVaultARN == "":
		return nil, false, errorf(ErrMissingParameter, "Missing required parameter DestinationBackupVaultArn.")
	case in.IAMRoleARN == "":
		return nil, false, errorf(ErrMissingParameter, "Missing required parameter IamRoleArn.")
	}
	region, destAccount, destVault, ok := parseVaultARN(in.DestinationVaultARN)
	if !ok {
		return nil, false, errorf(ErrInvalidParameter, "Invalid DestinationBackupVaultArn %q.", in.DestinationVaultARN)
	}
	if destAccount != account {
		return nil, false, errorf(ErrInvalidParameter, "Copies into another account's vault (%s) need a backup vault access policy, which Bulwark does not support.", in.DestinationVaultARN)
	}
	if region != s.cat.Region() && (s.remote == nil || !s.remoteRegions[region]) {
		return nil, false, errorf(ErrInvalidParameter, "Region %s of DestinationBackupVaultArn is not a region of this deployment.", region)
	}
	if region == s.cat.Region() && destVault == in.SourceVaultName {
		return nil, false, errorf(ErrInvalidParameter, "The destination vault is the source vault %s.", destVault)
	}
	if err := validateLifecycle(in.Lifecycle, "the copy job"); err != nil {
		return nil, false, err
	}
	p, err := s.DescribeRecoveryPoint(ctx, account, in.SourceVaultName, in.RecoveryPointARN)
	if err != nil {
		return nil, false, err
	}
	if p.Status != PointCompleted && p.Status != PointPartial {
		return nil, false, errorf(ErrInvalidRequest, "Recovery point %s is %s and cannot be copied.", p.ARN, p.Status)
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	now := s.cat.clock()
	if in.IdempotencyToken != "" {
		jobs, err := s.ListCopyJobs(ctx, account, CopyJobFilter{})
		if err != nil {
			return nil, false, err
		}
		prev, err := reuse(jobs, in.IdempotencyToken, now, func(j *CopyJob) (string, time.Time) { return j.IdempotencyToken, j.CreationDate },
			func(j *CopyJob) bool {
				return j.SourceRecoveryPointARN == p.ARN && j.DestinationBackupVaultARN == in.DestinationVaultARN
			})
		if err != nil || prev != nil {
			return prev, prev != nil, err
		}
	}
	id := newUUID()
	if p.IsContinuous() {
		// A continuous point's copy is one point that follows it.
		id = p.PointID
	}
	j = &CopyJob{
		AccountID: account, CopyJobID: strings.ToUpper(newUUID()),
		SourceBackupVaultName: p.VaultName, SourceBackupVaultARN: p.VaultARN, SourceRecoveryPointARN: p.ARN,
		DestinationBackupVaultARN:   in.DestinationVaultARN,
		DestinationRecoveryPointARN: "arn:aws:backup:" + region + ":" + account + ":recovery-point:" + id,
		ResourceARN:                 p.ResourceARN, ResourceType: p.ResourceType, IAMRoleARN: in.IAMRoleARN,
		IdempotencyToken: in.IdempotencyToken, State: CopyCreated, CreationDate: now, Gateway: s.gateway,
		BackupSizeInBytes: p.BackupSizeInBytes, Lifecycle: in.Lifecycle, CreatedBy: in.CreatedBy,
		CreatedByBackupJobID: in.BackupJobID, DestRegion: region, DestAccount: destAccount, DestVault: destVault, DestPointID: id,
	}
	if err := s.saveCopy(ctx, j); err != nil {
		return nil, false, err
	}
	return j, false, nil
}

func (s *Service) saveCopy(ctx context.Context, j *CopyJob) error {
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		return putJSON(tx, spaceCopyJobs, key(j.AccountID, j.CopyJobID), j)
	})
}

// startCopyActions starts the copies a plan rule asks for after its backup
// completed. A copy that cannot start is recorded as a failed copy job, so
// that it shows.
func (s *Service) startCopyActions(ctx context.Context, j *BackupJob) {
	for _, ca := range j.CopyActions {
		in := StartCopyJobInput{
			RecoveryPointARN: j.RecoveryPointARN, SourceVaultName: j.VaultName, DestinationVaultARN: ca.DestinationBackupVaultArn,
			IAMRoleARN: j.IAMRoleARN, Lifecycle: ca.Lifecycle, CreatedBy: j.CreatedBy, BackupJobID: j.JobID,
			IdempotencyToken: "copy/" + j.JobID + "/" + ca.DestinationBackupVaultArn,
		}
		if _, err := s.StartCopyJob(ctx, j.AccountID, in); err != nil {
			s.log.Warn("copy action not started", "job", j.JobID, "destination", ca.DestinationBackupVaultArn, "err", err)
			now := s.cat.clock()
			failed := &CopyJob{
				AccountID: j.AccountID, CopyJobID: strings.ToUpper(newUUID()), SourceBackupVaultName: j.VaultName,
				SourceBackupVaultARN: j.VaultARN, SourceRecoveryPointARN: j.RecoveryPointARN,
				DestinationBackupVaultARN: ca.DestinationBackupVaultArn, ResourceARN: j.ResourceARN, ResourceType: j.ResourceType,
				IAMRoleARN: j.IAMRoleARN, State: CopyFailed, StatusMessage: jobMessage(ctx, err), CreationDate: now,
				CompletionDate: &now, Lifecycle: ca.Lifecycle, CreatedBy: j.CreatedBy, CreatedByBackupJobID: j.JobID,
			}
			if err := s.saveCopy(ctx, failed); err != nil {
				s.log.Error("record copy job", "job", failed.CopyJobID, "err", err)
			}
		}
	}
}

// runCopy runs a copy job until it completes, fails for good, or the
// service closes (then it stays RUNNING and starts again with the next
// service).
func (s *Service) runCopy(ctx context.Context, j *CopyJob) {
	started := s.cat.clock()
	backoff := copyRetryMin
	for {
		j.State = CopyRunning
		j.Attempts++
		if err := s.saveCopy(ctx, j); err != nil {
			s.log.Error("record copy job", "job", j.CopyJobID, "err", err)
			return
		}
		st, err := s.copyOnce(ctx, j)
		if ctx.Err() != nil {
			return // shutdown: resumed by the next service
		}
		var be *Error
		switch {
		case err == nil:
			done := s.cat.clock()
			j.State, j.StatusMessage, j.CompletionDate = CopyCompleted, "", &done
			j.BytesTransferred += st.Sent
		case errors.As(err, &be) || errors.Is(err, vault.ErrCorrupt) || errors.Is(err, vault.ErrInvalid):
			done := s.cat.clock()
			j.State, j.StatusMessage, j.CompletionDate = CopyFailed, jobMessage(ctx, err), &done
			j.BytesTransferred += st.Sent
		default:
			j.BytesTransferred += st.Sent
			j.StatusMessage = fmt.Sprintf("Attempt %d did not complete: %v. Retrying in %s.", j.Attempts, err, backoff)
			s.log.Warn("copy job: destination failed, retrying", "job", j.CopyJobID, "destination", j.DestinationBackupVaultARN, "attempt", j.Attempts, "err", err)
			if err := s.saveCopy(ctx, j); err != nil {
				s.log.Error("record copy job", "job", j.CopyJobID, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, s.copyRetryMax)
			continue
		}
		if err := s.saveCopy(ctx, j); err != nil {
			s.log.Error("record copy job", "job", j.CopyJobID, "err", err)
		}
		s.observeJob(kindCopy, j.State, started, s.cat.clock(), st.Bytes, st.Sent)
		return
	}
}

// copyOnce makes one attempt at a copy.
func (s *Service) copyOnce(ctx context.Context, j *CopyJob) (vault.TransferStats, error) {
	var st vault.TransferStats
	p, err := s.DescribeRecoveryPoint(ctx, j.AccountID, j.SourceBackupVaultName, j.SourceRecoveryPointARN)
	if err != nil {
		return st, err
	}
	src, err := s.pointVault(ctx, p)
	if err != nil {
		return st, err
	}
	if p.IsContinuous() {
		return s.copyContinuous(ctx, j, p)
	}
	defer s.jobRunning(kindCopy)()
	created := p.CreationDate
	in := CopyIn{AccountID: j.DestAccount, VaultName: j.DestVault, PointID: j.DestPointID, Point: RecoveryPoint{
		AccountID: j.DestAccount, ResourceARN: p.ResourceARN, ResourceType: p.ResourceType, IAMRoleARN: j.IAMRoleARN,
		BackupJobID: p.BackupJobID, CreationDate: created, Lifecycle: j.Lifecycle, CalculatedLifecycle: calculate(j.Lifecycle, created),
		Origin: "copy", CreatedBy: j.CreatedBy, SourceBackupVaultARN: p.VaultARN, SourceRecoveryPointARN: p.ARN,
		ResourceMetadata: p.ResourceMetadata,
	}}
	var dst vault.Target
	var done *RecoveryPoint
	if j.DestRegion == s.cat.Region() {
		dst, done, err = s.BeginCopyIn(ctx, in)
	} else {
		dst, done, err = s.remote.BeginCopy(ctx, j.DestRegion, in)
	}
	if err != nil || done != nil {
		return st, err
	}
	_, st, err = src.Transfer(ctx, p.PointID, dst, func(ts vault.TransferStats) {
		// Progress shows in DescribeCopyJob; a lost write costs nothing.
		cp := *j
		cp.BytesTransferred += ts.Sent
		_ = s.saveCopy(ctx, &cp)
	})
	return st, err
}

// BeginCopyIn opens the receiving end of a copy into a vault of this
// region. When the copy is there already (a retry of a copy whose answer
// was lost), it returns its record and no target.
func (s *Service) BeginCopyIn(ctx context.Context, in CopyIn) (vault.Target, *RecoveryPoint, error) {
	vr, err := s.cat.DescribeVault(ctx, in.AccountID, in.VaultName)
	if err != nil {
		return nil, nil, err
	}
	if in.Continuous == nil && (in.PointID == "" || strings.ContainsAny(in.PointID, "/:")) {
		return nil, nil, errorf(ErrInvalidParameter, "Invalid recovery point ID %q.", in.PointID)
	}
	if err := validateLifecycle(in.Point.Lifecycle, "the copy"); err != nil {
		return nil, nil, err
	}
	if err := s.cat.CheckLockRetention(ctx, in.AccountID, in.VaultName, in.Point.Lifecycle, in.Point.CreationDate); err != nil {
		return nil, nil, err
	}
	release, err := s.space.Admit(0)
	if err != nil {
		return nil, nil, err
	}
	release()
	if in.Continuous != nil {
		return s.beginPieceIn(ctx, in, vr)
	}
	var existing *RecoveryPoint
	err = s.cat.view(ctx, func(tx meta.Tx) error {
		rp := &RecoveryPoint{}
		found, err := getJSON(tx, spacePoints, key(in.AccountID, in.VaultName, in.PointID), rp)
		if found {
			existing = rp
		}
		return err
	})
	if err != nil || existing != nil {
		return nil, existing, err
	}
	v, err := s.vault(ctx, in.AccountID, in.VaultName)
	if err != nil {
		return nil, nil, err
	}
	labels := map[string]string{"resource": in.Point.ResourceARN, "source": in.Point.SourceRecoveryPointARN}
	w, err := v.Begin(ctx, in.PointID, labels)
	if errors.Is(err, vault.ErrExists) {
		// Committed by an attempt whose record was never written: redo it.
		if err := v.Delete(ctx, in.PointID); err != nil {
			return nil, nil, err
		}
		w, err = v.Begin(ctx, in.PointID, labels)
	}
	if err != nil {
		return nil, nil, err
	}
	rp := in.Point
	rp.AccountID, rp.PointID = in.AccountID, in.PointID
	rp.ARN = s.cat.RecoveryPointARN(in.AccountID, in.PointID)
	rp.VaultName, rp.VaultARN, rp.EncryptionKeyARN = vr.Name, vr.ARN, vr.EncryptionKeyARN
	rp.StorageClass = StorageWarm
	return &copyIn{Writer: w, s: s, rp: &rp}, nil, nil
}

// copyIn is the receiving end of a copy: a vault writer whose commit also
// records the recovery point.
type copyIn struct {
	*vault.Writer
	s  *Service
	rp *RecoveryPoint
}

// PutChunks stores chunks that the disk has room for.
func (c *copyIn) PutChunks(ctx context.Context, chunks []vault.ChunkData) error {
	n := 0
	for _, ch := range chunks {
		n += len(ch.Data)
	}
	release, err := c.s.space.Admit(int64(n))
	if err != nil {
		return err
	}
	defer release()
	return c.s.space.Explain(c.Writer.PutChunks(ctx, chunks))
}

func (c *copyIn) Commit(ctx context.Context) (*vault.Point, error) {
	p, err := c.Writer.Commit(ctx)
	if err != nil {
		return nil, err
	}
	done := c.s.cat.clock()
	c.rp.CompletionDate = &done
	c.rp.Status = PointCompleted
	c.rp.BackupSizeInBytes, c.rp.BytesNew, c.rp.Objects = p.Bytes, p.BytesNew, p.Entries
	if err := c.s.recordPoint(ctx, c.rp); err != nil {
		return nil, err
	}
	return p, nil
}

// CopyJobFilter selects copy jobs; empty fields select all.
type CopyJobFilter struct {
	ResourceARN, ResourceType, State, DestinationVaultARN, SourceRecoveryPointARN string
	CreatedAfter, CreatedBefore                                                   time.Time
}

// ListCopyJobs returns the account's copy jobs that pass f, newest first.
func (s *Service) ListCopyJobs(ctx context.Context, account string, f CopyJobFilter) ([]*CopyJob, error) {
	var out []*CopyJob
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceCopyJobs, key(account), func(_, v []byte) error {
			j := &CopyJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (f.ResourceARN == "" || f.ResourceARN == j.ResourceARN) && (f.ResourceType == "" || f.ResourceType == j.ResourceType) &&
				(f.State == "" || f.State == j.State) &&
				(f.DestinationVaultARN == "" || f.DestinationVaultARN == j.DestinationBackupVaultARN) &&
				(f.SourceRecoveryPointARN == "" || f.SourceRecoveryPointARN == j.SourceRecoveryPointARN) &&
				inRange(j.CreationDate, f.CreatedAfter, f.CreatedBefore) {
				out = append(out, j)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool { return out[i].CreationDate.After(out[k].CreationDate) })
	return out, err
}

// DescribeCopyJob returns a copy job of the account.
func (s *Service) DescribeCopyJob(ctx context.Context, account, id string) (*CopyJob, error) {
	return readRecord[CopyJob](ctx, s.cat, spaceCopyJobs, account, id, "Copy job %s does not exist.")
}

// pointVault opens the repository that holds a recovery point: its
// vault's, or the vault's cold tier once the point moved there.
func (s *Service) pointVault(ctx context.Context, p *RecoveryPoint) (*vault.Vault, error) {
	return s.vault(ctx, p.AccountID, p.tier())
}

// tier names the repository that holds the point: its vault's name, with
// coldSuffix in cold storage.
func (p *RecoveryPoint) tier() string {
	if p.StorageClass == StorageCold {
		return p.VaultName + coldSuffix
	}
	return p.VaultName
}

// coldSuffix names a vault's cold tier beside it (Dir/account/NAME.cold):
// a vault name cannot hold a dot.
const coldSuffix = ".cold"

// resumeCopies starts again the copy jobs an earlier run of the service
// left unfinished.
func (s *Service) resumeCopies(ctx context.Context, dead func(gateway string) bool) error {
	var jobs []*CopyJob
	// The jobs are this gateway's in the transaction that finds them, so
	// that two gateways never resume one.
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		jobs = jobs[:0]
		it := tx.Iter(spaceCopyJobs)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			j := &CopyJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (j.State == CopyCreated || j.State == CopyRunning) && dead(j.Gateway) {
				jobs = append(jobs, j)
			}
		}
		for _, j := range jobs {
			if j.Gateway == s.gateway {
				continue
			}
			j.Gateway = s.gateway
			if err := putJSON(tx, spaceCopyJobs, key(j.AccountID, j.CopyJobID), j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		s.log.Info("copy job resumed", "job", j.CopyJobID, "destination", j.DestinationBackupVaultARN)
		s.start(func(ctx context.Context) { s.runCopy(ctx, j) })
	}
	return nil
}
