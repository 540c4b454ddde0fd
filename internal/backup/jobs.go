package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/meta"
)

// Keyspaces of the jobs and recovery points.
const (
	spaceJobs         = "backup-jobs"         // account/jobID → BackupJob
	spacePoints       = "backup-points"       // account/vault/pointID → RecoveryPoint
	spaceRestoreJobs  = "backup-restore-jobs" // account/jobID → RestoreJob
	idempotencyWindow = time.Hour
	// progressEvery bounds how often a running job's progress is written.
	progressEvery = time.Second
)

// Backup job states, as AWS Backup names them.
const (
	JobCreated   = "CREATED"
	JobRunning   = "RUNNING"
	JobCompleted = "COMPLETED"
	JobFailed    = "FAILED"
	JobAborted   = "ABORTED"
)

// Restore job states.
const (
	RestorePending   = "PENDING"
	RestoreRunning   = "RUNNING"
	RestoreCompleted = "COMPLETED"
	RestoreFailed    = "FAILED"
)

// Recovery point states.
const (
	PointCompleted = "COMPLETED"
	PointPartial   = "PARTIAL"
	PointFailed    = "FAILED"
)

// Storage classes of a recovery point.
const (
	StorageWarm = "WARM"
	StorageCold = "COLD"
)

// BackupJob is an on-demand backup job and its progress.
type BackupJob struct {
	AccountID         string
	JobID             string
	VaultName         string
	VaultARN          string
	ResourceARN       string
	ResourceType      string
	IAMRoleARN        string
	IdempotencyToken  string `json:",omitempty"`
	RecoveryPointARN  string
	State             string
	StatusMessage     string `json:",omitempty"`
	CreationDate      time.Time
	StartedAt         *time.Time `json:",omitempty"`
	CompletionDate    *time.Time `json:",omitempty"`
	BytesTransferred  int64
	BackupSizeInBytes int64
	Objects           int64
	Lifecycle         *Lifecycle `json:",omitempty"`
	// CreatedBy names the plan rule of a scheduled job; nil on demand.
	CreatedBy *CreatedBy `json:",omitempty"`
	// CopyActions and RecoveryPointTags come from the plan rule: the
	// copies made after the job completes and the tags of its point.
	CopyActions       []CopyAction      `json:",omitempty"`
	RecoveryPointTags map[string]string `json:",omitempty"`
	// ExpectedObjects and ExpectedBytes are what the resource held at the
	// job's instant, counted before the copy starts: the totals of
	// PercentDone.
	ExpectedObjects int64 `json:",omitempty"`
	ExpectedBytes   int64 `json:",omitempty"`
	// Continuous is set for a base of a continuous point, whose ARN is
	// RecoveryPointARN.
	Continuous bool `json:",omitempty"`
	// Gateway names the process of the region that runs the job, when
	// several serve it (ServiceConfig.Gateway).
	Gateway string `json:",omitempty"`
}

// CreatedBy names the backup plan rule that made a job or recovery point.
type CreatedBy struct {
	BackupPlanId      string
	BackupPlanArn     string
	BackupPlanVersion string
	BackupRuleId      string
}

// CalculatedLifecycle is when a recovery point moves to cold storage and
// when it expires.
type CalculatedLifecycle struct {
	MoveToColdStorageAt *time.Time `json:",omitempty"`
	DeleteAt            *time.Time `json:",omitempty"`
}

// RecoveryPoint is the catalog's record of a recovery point in a vault.
type RecoveryPoint struct {
	AccountID           string
	ARN                 string
	VaultName           string
	VaultARN            string
	ResourceARN         string
	ResourceType        string
	IAMRoleARN          string
	BackupJobID         string
	EncryptionKeyARN    string
	CreationDate        time.Time
	CompletionDate      *time.Time `json:",omitempty"`
	Status              string
	StatusMessage       string `json:",omitempty"`
	BackupSizeInBytes   int64
	BytesNew            int64
	Objects             int64
	Lifecycle           *Lifecycle           `json:",omitempty"`
	CalculatedLifecycle *CalculatedLifecycle `json:",omitempty"`
	// Origin is "on-demand" for a point of StartBackupJob, "plan" for a
	// scheduled one, "copy" for a copy of another vault's point.
	Origin    string
	CreatedBy *CreatedBy `json:",omitempty"`
	// StorageClass is WARM, or COLD once the lifecycle moved the point to
	// the vault's cold tier.
	StorageClass string `json:",omitempty"`
	// SourceBackupVaultARN and SourceRecoveryPointARN name the point a
	// copy was made from.
	SourceBackupVaultARN   string `json:",omitempty"`
	SourceRecoveryPointARN string `json:",omitempty"`
	// PointID names the point in the vault's repository.
	PointID string
	// ResourceMetadata is what the provider recorded of the resource as
	// it backed it up (BackupResult.Metadata): what a restore of the point
	// needs to know of the source, kept with its copies.
	ResourceMetadata map[string]string `json:",omitempty"`
}

// ID is the last part of the point's ARN.
func (p *RecoveryPoint) ID() string { return p.PointID }

// RestoreJob is a restore of a recovery point and its progress.
type RestoreJob struct {
	AccountID          string
	JobID              string
	RecoveryPointARN   string
	VaultName          string
	ResourceType       string
	IAMRoleARN         string
	IdempotencyToken   string `json:",omitempty"`
	Metadata           map[string]string
	Status             string
	StatusMessage      string `json:",omitempty"`
	CreationDate       time.Time
	CompletionDate     *time.Time `json:",omitempty"`
	BackupSizeInBytes  int64
	BytesRestored      int64
	ObjectsRestored    int64
	ObjectsSkipped     int64
	CreatedResourceARN string `json:",omitempty"`
	// RestoreTestingPlanARN names the restore testing plan that started
	// the job; the validation and deletion statuses are restore testing's.
	RestoreTestingPlanARN   string `json:",omitempty"`
	ValidationStatus        string `json:",omitempty"`
	ValidationStatusMessage string `json:",omitempty"`
	DeletionStatus          string `json:",omitempty"`
	DeletionStatusMessage   string `json:",omitempty"`
	// ValidationWindowHours is how long a restore test's target stays
	// after the restore ends.
	ValidationWindowHours int64 `json:",omitempty"`
	// RestoreTestCheck is the selection's own check of a restore test
	// (restoretest_run.go), kept out of the provider's metadata.
	RestoreTestCheck *RestoreCheck `json:",omitempty"`
	// Gateway names the process of the region that runs the job, when
	// several serve it (ServiceConfig.Gateway).
	Gateway string `json:",omitempty"`
}

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Catalog *Catalog
	// Providers back up and restore the resources, one per type; required.
	Providers *Registry
	// Dir holds the vault repositories, one per account and vault:
	// Dir/<account>/<vault>.
	Dir string
	// Secret is the deployment key the repositories are encrypted with.
	Secret []byte
	Logger *slog.Logger
	// Registerer takes the service's metrics (metrics.go); nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	// Remote carries copies into other regions' vaults, which are
	// RemoteRegions; nil keeps copies within the region (copy.go).
	Remote        Remote
	RemoteRegions []string
	// CopyRetryMax bounds the wait between attempts of a copy whose
	// destination failed; DefaultCopyRetryMax when 0.
	CopyRetryMax time.Duration
	// CollectInterval is the time between collections of the vaults that
	// recovery points left (cold.go); DefaultCollectInterval when 0.
	CollectInterval time.Duration
	// Space admits the data backups and copies bring into vaults; nil
	// admits everything.
	Space Space
	// Admin names the deployment's admin account, the only one whose
	// restore tests run a ValidationCommand; nil: no account's do.
	Admin func() string
	// Gateway names this process when several serve the region over one
	// metadata store: the jobs it starts carry the name, and it neither
	// fails nor resumes at start what others run (TakeOverInterrupted
	// does, for gateways that died), nor runs continuous backup streams
	// until ResumeStreams. Empty for the region's only process.
	Gateway string
}

// Space decides whether the disk has room for new data. A backup job it
// refuses fails, its status message saying why (a plan runs it again at
// its next window); a copy it refuses is retried until there is room, as
// for any failure of its destination.
type Space interface {
	// Admit reserves room for size bytes (0 when unknown) until release
	// is called, or refuses them with an error saying why.
	Admit(size int64) (release func(), err error)
	// Explain turns a write's no-space error (ENOSPC) into the same kind
	// of error as a refusal, and returns other errors as they are.
	Explain(err error) error
}

type admitAll struct{}

func (admitAll) Admit(int64) (func(), error) { return func() {}, nil }
func (admitAll) Explain(err error) error     { return err }

// Service runs backup and restore jobs and owns the vault repositories.
// Jobs run in goroutines of the service; Close stops them and closes the
// repositories.
type Service struct {
	cat       *Catalog
	providers *Registry
	dir       string
	secret    []byte
	log       *slog.Logger
	space     Space

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards vaults, closed; held while opening a vault
	vaults map[string]*vault.Vault
	closed bool
	// startMu makes the idempotency check and the job's creation atomic.
	startMu sync.Mutex
	// running holds the cancel functions of running jobs (stop.go).
	runMu   sync.Mutex
	running map[string]context.CancelCauseFunc
	metrics *metrics

	remote        Remote
	remoteRegions map[string]bool
	copyRetryMax  time.Duration
	streams       streams
	// gateway names this process among the region's (ServiceConfig.Gateway).
	gateway string
	// dirty lists the vault repositories with garbage for Collect (guarded
	// by mu): account/name → {account, name}.
	dirty map[string][2]string
	admin func() string
}

// NewService returns a service. Jobs an earlier run left unfinished are
// marked failed: their goroutines died with that run.
func NewService(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Providers == nil {
		return nil, errors.New("backup service: no resource providers")
	}
	s := &Service{cat: cfg.Catalog, providers: cfg.Providers, dir: cfg.Dir, secret: cfg.Secret, log: cfg.Logger, vaults: map[string]*vault.Vault{}}
	s.space, s.admin = cfg.Space, cfg.Admin
	s.streams = streams{running: map[string]context.CancelFunc{}, syncing: map[string]*syncState{}, synced: map[string]uint64{}, sending: map[string]*sync.Mutex{}}
	if s.space == nil {
		s.space = admitAll{}
	}
	s.metrics = newMetrics(cfg.Catalog, cfg.Logger)
	if cfg.Registerer != nil {
		if err := s.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("register backup metrics: %w", err)
		}
	}
	s.remote, s.remoteRegions, s.copyRetryMax = cfg.Remote, map[string]bool{}, cfg.CopyRetryMax
	for _, r := range cfg.RemoteRegions {
		s.remoteRegions[r] = true
	}
	if s.copyRetryMax <= 0 {
		s.copyRetryMax = DefaultCopyRetryMax
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.gateway = cfg.Gateway
	s.streams.leased = s.gateway != ""
	if s.gateway == "" {
		// The only process of the region: whatever a previous run left
		// running died with it.
		if err := s.TakeOverInterrupted(ctx, nil); err != nil {
			s.cancel()
			return nil, err
		}
		if err := s.resumeStreams(ctx); err != nil {
			s.cancel()
			return nil, err
		}
	}
	every := cfg.CollectInterval
	if every <= 0 {
		every = DefaultCollectInterval
	}
	s.start(func(ctx context.Context) { s.collectLoop(ctx, every) })
	return s, nil
}

// TakeOverInterrupted ends the work of processes that died: backup and
// restore jobs they were running are marked failed (their goroutines died
// with them), and the copy jobs they were running go on in this one. live
// names the gateways of the region alive now (nil: none but this one); a
// job of a live gateway is left alone. With several gateways, one of them
// calls it periodically, under a lease.
func (s *Service) TakeOverInterrupted(ctx context.Context, live map[string]bool) error {
	dead := func(gateway string) bool { return s.gateway == "" || (gateway != s.gateway && !live[gateway]) }
	if err := s.failInterrupted(ctx, dead); err != nil {
		return err
	}
	return s.resumeCopies(ctx, dead)
}

// ResumeStreams starts the continuous backup streams of the region; with
// several gateways, the one holding the streams' lease calls it.
func (s *Service) ResumeStreams(ctx context.Context) error { return s.resumeStreams(ctx) }

// StopStreams stops the continuous backup streams this service runs, as
// when its gateway loses the streams' lease.
func (s *Service) StopStreams() { s.stopStreams() }

func (s *Service) failInterrupted(ctx context.Context, dead func(gateway string) bool) error {
	now := s.cat.clock()
	return s.cat.update(ctx, func(tx meta.Tx) error {
		var jobs []*BackupJob
		var restores []*RestoreJob
		it := tx.Iter(spaceJobs)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			j := &BackupJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (j.State == JobCreated || j.State == JobRunning) && dead(j.Gateway) {
				jobs = append(jobs, j)
			}
		}
		it = tx.Iter(spaceRestoreJobs)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			j := &RestoreJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (j.Status == RestorePending || j.Status == RestoreRunning) && dead(j.Gateway) {
				restores = append(restores, j)
			}
		}
		for _, j := range jobs {
			j.State, j.StatusMessage, j.CompletionDate = JobFailed, interruptedMessage(j.Gateway, s.gateway), &now
			if err := putJSON(tx, spaceJobs, key(j.AccountID, j.JobID), j); err != nil {
				return err
			}
		}
		for _, j := range restores {
			j.Status, j.StatusMessage, j.CompletionDate = RestoreFailed, interruptedMessage(j.Gateway, s.gateway), &now
			if err := putRestoreJob(tx, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// interruptedMessage is the status of a job whose process died.
func interruptedMessage(gateway, self string) string {
	if gateway == "" || self == "" {
		return "The job was interrupted by a restart of the server."
	}
	return "The job was interrupted: the server process running it (" + gateway + ") stopped."
}

// Close stops running jobs (they end FAILED), waits for them and closes
// the vault repositories.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, v := range s.vaults {
		if err := v.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		delete(s.vaults, name)
	}
	return errors.Join(errs...)
}

// Providers is the service's registry of resource providers.
func (s *Service) Providers() *Registry { return s.providers }

// vault opens (once) the repository of an account's vault.
func (s *Service) vault(ctx context.Context, account, name string) (*vault.Vault, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, vault.ErrClosed
	}
	k := account + "/" + name
	if v, ok := s.vaults[k]; ok {
		return v, nil
	}
	dir := filepath.Join(s.dir, account, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	v, err := vault.Open(ctx, dir, s.secret)
	if err != nil {
		return nil, err
	}
	s.vaults[k] = v
	return v, nil
}

// go runs fn in a goroutine of the service.
func (s *Service) start(fn func(ctx context.Context)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.ctx)
	}()
	return true
}

// RecoveryPointARN returns the ARN of a recovery point of the region.
func (c *Catalog) RecoveryPointARN(account, id string) string {
	return "arn:aws:backup:" + c.region + ":" + account + ":recovery-point:" + id
}

// StartBackupJobInput describes an on-demand backup.
type StartBackupJobInput struct {
	VaultName        string
	ResourceARN      string
	IAMRoleARN       string
	IdempotencyToken string
	Lifecycle        *Lifecycle
	// Set by the scheduler for a plan's run.
	CreatedBy         *CreatedBy
	CopyActions       []CopyAction
	RecoveryPointTags map[string]string
	// Continuous asks for a base of the resource's continuous point
	// (a rule's EnableContinuousBackup), when its provider streams.
	Continuous bool
}

// StartBackupJob records a backup job and starts it. A call with the
// token and input of a job created within the idempotency window returns
// that job.
func (s *Service) StartBackupJob(ctx context.Context, account string, in StartBackupJobInput) (*BackupJob, error) {
	if in.VaultName == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter BackupVaultName.")
	}
	if in.ResourceARN == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter ResourceArn.")
	}
	if in.IAMRoleARN == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter IamRoleArn.")
	}
	p, err := s.providers.Lookup(in.ResourceARN)
	if err != nil {
		return nil, err
	}
	if err := validateLifecycle(in.Lifecycle, "the backup job"); err != nil {
		return nil, err
	}
	v, err := s.cat.DescribeVault(ctx, account, in.VaultName)
	if err != nil {
		return nil, err
	}
	// Another account's resource is refused when the job is asked for, so
	// that no job is made to fail. One that does not exist passes: the job
	// fails when it runs, as it does for one deleted after it started.
	if _, err := p.Describe(ctx, account, in.ResourceARN); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	now := s.cat.clock()
	if in.IdempotencyToken != "" {
		jobs, err := s.ListBackupJobs(ctx, account, JobFilter{})
		if err != nil {
			return nil, err
		}
		j, err := reuse(jobs, in.IdempotencyToken, now, func(j *BackupJob) (string, time.Time) { return j.IdempotencyToken, j.CreationDate },
			func(j *BackupJob) bool {
				return j.VaultName == in.VaultName && j.ResourceARN == in.ResourceARN && j.IAMRoleARN == in.IAMRoleARN && sameLifecycle(j.Lifecycle, in.Lifecycle)
			})
		if err != nil || j != nil {
			return j, err
		}
	}
	id := newUUID()
	j := &BackupJob{
		AccountID: account, JobID: strings.ToUpper(newUUID()), VaultName: v.Name, VaultARN: v.ARN,
		ResourceARN: in.ResourceARN, ResourceType: p.Type(), IAMRoleARN: in.IAMRoleARN, IdempotencyToken: in.IdempotencyToken,
		RecoveryPointARN: s.cat.RecoveryPointARN(account, id), State: JobCreated, CreationDate: now, Lifecycle: in.Lifecycle,
		CreatedBy: in.CreatedBy, CopyActions: in.CopyActions, RecoveryPointTags: in.RecoveryPointTags, Gateway: s.gateway,
	}
	if cp, ok := p.(ContinuousProvider); ok && in.Continuous && s.canStream(ctx, cp, account, in.ResourceARN) {
		cp, err := s.continuousPoint(ctx, j, in.CopyActions)
		if err != nil {
			return nil, err
		}
		j.Continuous, j.RecoveryPointARN, id = true, cp.ARN, cp.PointID
		s.ensureStream(cp)
	}
	if err := s.saveJob(ctx, j); err != nil {
		return nil, err
	}
	snapshot := *j
	if !s.start(func(ctx context.Context) {
		s.track(ctx, j.JobID, func(ctx context.Context) { s.runBackup(ctx, p, j, id) })
	}) {
		return nil, vault.ErrClosed
	}
	return &snapshot, nil
}

// reuse returns the job among jobs made with token within the idempotency
// window before now (nil if none), or an error when same says that its
// request was another: a token names one request.
func reuse[J any](jobs []*J, token string, now time.Time, of func(*J) (string, time.Time), same func(*J) bool) (*J, error) {
	for _, j := range jobs {
		if t, created := of(j); t != token || now.Sub(created) > idempotencyWindow {
			continue
		}
		if !same(j) {
			return nil, errorf(ErrInvalidRequest, "The idempotency token %s was used with a different request.", token)
		}
		return j, nil
	}
	return nil, nil
}

func sameLifecycle(a, b *Lifecycle) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (s *Service) saveJob(ctx context.Context, j *BackupJob) error {
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		return putJSON(tx, spaceJobs, key(j.AccountID, j.JobID), j)
	})
}

func (s *Service) saveRestore(ctx context.Context, j *RestoreJob) error {
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		return putRestoreJob(tx, j)
	})
}

// runBackup runs a job to its end, recording each step.
func (s *Service) runBackup(ctx context.Context, p Provider, j *BackupJob, pointID string) {
	started := s.cat.clock()
	j.State, j.StartedAt = JobRunning, &started
	if err := s.saveJob(ctx, j); err != nil {
		s.log.Error("record backup job", "job", j.JobID, "err", err)
		return
	}
	// The vault lock is judged as the job runs: AWS fails, not refuses, a
	// job whose retention the target vault's lock does not allow.
	var rp *RecoveryPoint
	err := s.cat.CheckLockRetention(ctx, j.AccountID, j.VaultName, j.Lifecycle, j.CreationDate)
	if err == nil {
		rp, err = s.backupResource(ctx, p, j, pointID, started)
	}
	done := s.cat.clock()
	j.CompletionDate = &done
	if why, ok := stopped(ctx); ok && err != nil {
		j.State, j.StatusMessage, j.RecoveryPointARN = JobAborted, why.Error(), ""
	} else if err != nil {
		j.State, j.StatusMessage = JobFailed, jobMessage(ctx, s.space.Explain(err))
		if rp == nil {
			j.RecoveryPointARN = ""
		}
	} else {
		j.State = JobCompleted
		j.BackupSizeInBytes = rp.BackupSizeInBytes
		if rp.Status == PointPartial {
			j.StatusMessage = rp.StatusMessage
		}
	}
	// Counted before the record says the job ended, so that whoever sees
	// it ended also sees it in the metrics.
	var stored int64
	if rp != nil {
		stored = rp.BytesNew
	}
	s.observeJob(kindBackup, j.State, started, done, j.BytesTransferred, stored)
	if err := s.saveJob(context.WithoutCancel(ctx), j); err != nil {
		s.log.Error("record backup job", "job", j.JobID, "err", err)
	}
	if j.State == JobCompleted {
		s.startCopyActions(ctx, j)
	}
}

// PercentDone is how far a job has come, from 0 to 100: the mean of its
// shares of the objects and of the bytes the resource held at its instant.
// Both shares count items unchanged since the previous point, which the
// job records without reading. Only a completed job is at 100; a failed
// or stopped one stays where it stopped.
func (j *BackupJob) PercentDone() float64 {
	if j.State == JobCompleted {
		return 100
	}
	if j.ExpectedObjects <= 0 {
		return 0 // not counted yet
	}
	share := min(float64(j.Objects)/float64(j.ExpectedObjects), 1)
	if j.ExpectedBytes > 0 {
		share = (share + min(float64(j.BackupSizeInBytes)/float64(j.ExpectedBytes), 1)) / 2
	}
	return min(100*share, 99.9)
}

// jobMessage is what a failed job tells its caller.
func jobMessage(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "The job was stopped by a shutdown of the server."
	}
	var be *Error
	if errors.As(err, &be) {
		return be.Message
	}
	var le *headroom.Error
	if errors.As(err, &le) {
		return le.Message()
	}
	return err.Error()
}

// recordPoint stores a recovery point and counts it in its vault.
func (s *Service) recordPoint(ctx context.Context, rp *RecoveryPoint) error {
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		v, err := getVault(tx, rp.AccountID, rp.VaultName)
		if err != nil {
			return err
		}
		v.NumberOfRecoveryPoints++
		if err := putJSON(tx, spaceVaults, key(rp.AccountID, rp.VaultName), v); err != nil {
			return err
		}
		return putJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), rp)
	})
}

// calculate works out a lifecycle's dates from a creation date.
func calculate(l *Lifecycle, created time.Time) *CalculatedLifecycle {
	if l == nil {
		return nil
	}
	c := &CalculatedLifecycle{}
	if l.MoveToColdStorageAfterDays != nil {
		t := created.AddDate(0, 0, int(*l.MoveToColdStorageAfterDays))
		c.MoveToColdStorageAt = &t
	}
	if l.DeleteAfterDays != nil {
		t := created.AddDate(0, 0, int(*l.DeleteAfterDays))
		c.DeleteAt = &t
	}
	return c
}

// DescribeBackupJob returns a job of the account.
func (s *Service) DescribeBackupJob(ctx context.Context, account, id string) (*BackupJob, error) {
	return readRecord[BackupJob](ctx, s.cat, spaceJobs, account, id, "Backup job %s does not exist.")
}

// JobFilter selects jobs; empty fields select all.
type JobFilter struct {
	ResourceARN, ResourceType, State, VaultName string
	CreatedAfter, CreatedBefore                 time.Time
}

// ListBackupJobs returns the account's jobs that pass f, newest first.
func (s *Service) ListBackupJobs(ctx context.Context, account string, f JobFilter) ([]*BackupJob, error) {
	var out []*BackupJob
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceJobs, key(account), func(_, v []byte) error {
			j := &BackupJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (f.ResourceARN == "" || f.ResourceARN == j.ResourceARN) && (f.ResourceType == "" || f.ResourceType == j.ResourceType) &&
				(f.State == "" || f.State == j.State) && (f.VaultName == "" || f.VaultName == j.VaultName) && inRange(j.CreationDate, f.CreatedAfter, f.CreatedBefore) {
				out = append(out, j)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool { return out[i].CreationDate.After(out[k].CreationDate) })
	return out, err
}

func inRange(t, after, before time.Time) bool {
	return (after.IsZero() || t.After(after)) && (before.IsZero() || t.Before(before))
}

// ListRecoveryPoints returns the account's recovery points of a vault ("" for
// every vault) and of a resource ("" for every resource), newest first.
func (s *Service) ListRecoveryPoints(ctx context.Context, account, vaultName, resourceARN string) ([]*RecoveryPoint, error) {
	if vaultName != "" {
		if _, err := s.cat.DescribeVault(ctx, account, vaultName); err != nil {
			return nil, err
		}
	}
	prefix := key(account)
	if vaultName != "" {
		prefix = key(account, vaultName)
	}
	var out []*RecoveryPoint
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spacePoints, prefix, func(_, v []byte) error {
			p := &RecoveryPoint{}
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			if resourceARN == "" || p.ResourceARN == resourceARN {
				out = append(out, p)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool { return out[i].CreationDate.After(out[k].CreationDate) })
	return out, err
}

// DescribeRecoveryPoint returns a recovery point of a vault by its ARN.
func (s *Service) DescribeRecoveryPoint(ctx context.Context, account, vaultName, arn string) (*RecoveryPoint, error) {
	id, ok := pointIDOf(arn, s.cat.RecoveryPointARN(account, ""))
	p := &RecoveryPoint{}
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		if _, err := getVault(tx, account, vaultName); err != nil {
			return err
		}
		found := false
		if ok {
			var err error
			if found, err = getJSON(tx, spacePoints, key(account, vaultName, id), p); err != nil {
				return err
			}
		}
		if !found {
			return errorf(ErrNotFound, "Recovery point %s does not exist in backup vault %s.", arn, vaultName)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func pointIDOf(arn, prefix string) (string, bool) {
	id, ok := strings.CutPrefix(arn, prefix)
	return id, ok && id != "" && !strings.Contains(id, "/")
}

// findPoint looks a recovery point up by ARN in every vault of the account.
func (s *Service) findPoint(ctx context.Context, account, arn string) (*RecoveryPoint, error) {
	if _, ok := pointIDOf(arn, s.cat.RecoveryPointARN(account, "")); ok {
		ps, err := s.ListRecoveryPoints(ctx, account, "", "")
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.ARN == arn {
				return p, nil
			}
		}
	}
	return nil, errorf(ErrNotFound, "Recovery point %s does not exist.", arn)
}

// RestoreMetadata returns the metadata a restore of the point starts from.
func (s *Service) RestoreMetadata(ctx context.Context, account, vaultName, arn string) (*RecoveryPoint, map[string]string, error) {
	p, err := s.DescribeRecoveryPoint(ctx, account, vaultName, arn)
	if err != nil {
		return nil, nil, err
	}
	prov, err := s.providers.Lookup(p.ResourceARN)
	if err != nil {
		return nil, nil, err
	}
	return p, prov.RestoreMetadata(p), nil
}

// StartRestoreJobInput describes a restore.
type StartRestoreJobInput struct {
	RecoveryPointARN string
	IAMRoleARN       string
	IdempotencyToken string
	Metadata         map[string]string
	ResourceType     string
	// Restore testing's: the plan that starts the job, and how long the
	// restored target stays for validation before it is deleted.
	RestoreTestingPlanARN string
	ValidationWindowHours int64
	RestoreTestCheck      *RestoreCheck
}

// StartRestoreJob records a restore job and starts it.
func (s *Service) StartRestoreJob(ctx context.Context, account string, in StartRestoreJobInput) (*RestoreJob, error) {
	if in.RecoveryPointARN == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter RecoveryPointArn.")
	}
	if _, ok := s.providers.ByType(in.ResourceType); in.ResourceType != "" && !ok {
		return nil, errorf(ErrInvalidParameter, "Resource type %s is not supported.", in.ResourceType)
	}
	p, err := s.findPoint(ctx, account, in.RecoveryPointARN)
	if err != nil {
		return nil, err
	}
	if p.Status != PointCompleted && p.Status != PointPartial {
		return nil, errorf(ErrInvalidRequest, "Recovery point %s is %s and cannot be restored.", p.ARN, p.Status)
	}
	prov, err := s.providers.Lookup(p.ResourceARN)
	if err != nil {
		return nil, err
	}
	if in.ResourceType != "" && in.ResourceType != prov.Type() {
		return nil, errorf(ErrInvalidParameter, "Recovery point %s is of resource type %s, not %s.", p.ARN, prov.Type(), in.ResourceType)
	}
	if p.IsContinuous() {
		if _, _, err := s.restoreTime(ctx, p, in.Metadata); err != nil {
			return nil, err
		}
	}
	target, err := prov.CheckRestore(ctx, account, p, in.Metadata)
	if err != nil {
		return nil, err
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	now := s.cat.clock()
	if in.IdempotencyToken != "" {
		jobs, err := s.ListRestoreJobs(ctx, account, JobFilter{})
		if err != nil {
			return nil, err
		}
		j, err := reuse(jobs, in.IdempotencyToken, now, func(j *RestoreJob) (string, time.Time) { return j.IdempotencyToken, j.CreationDate },
			func(j *RestoreJob) bool { return j.RecoveryPointARN == p.ARN })
		if err != nil || j != nil {
			return j, err
		}
	}
	j := &RestoreJob{
		AccountID: account, JobID: strings.ToUpper(newUUID()), RecoveryPointARN: p.ARN, VaultName: p.VaultName,
		ResourceType: prov.Type(), IAMRoleARN: in.IAMRoleARN, IdempotencyToken: in.IdempotencyToken, Metadata: withoutSecrets(in.Metadata),
		Status: RestorePending, CreationDate: now, BackupSizeInBytes: p.BackupSizeInBytes,
		CreatedResourceARN: target, RestoreTestingPlanARN: in.RestoreTestingPlanARN, ValidationWindowHours: in.ValidationWindowHours,
		RestoreTestCheck: in.RestoreTestCheck, Gateway: s.gateway,
	}
	if err := s.saveRestore(ctx, j); err != nil {
		return nil, err
	}
	snapshot := *j
	md := maps.Clone(in.Metadata) // with its secrets, which the job's record leaves out
	if !s.start(func(ctx context.Context) { s.runRestore(ctx, prov, j, p, md) }) {
		return nil, vault.ErrClosed
	}
	return &snapshot, nil
}

func (s *Service) runRestore(ctx context.Context, prov Provider, j *RestoreJob, p *RecoveryPoint, md map[string]string) {
	j.Status = RestoreRunning
	if err := s.saveRestore(ctx, j); err != nil {
		s.log.Error("record restore job", "job", j.JobID, "err", err)
		return
	}
	err := s.restorePoint(ctx, prov, j, p, md)
	done := s.cat.clock()
	j.CompletionDate = &done
	if err != nil {
		j.Status, j.StatusMessage = RestoreFailed, jobMessage(ctx, err)
	} else {
		j.Status = RestoreCompleted
	}
	s.observeJob(kindRestore, j.Status, j.CreationDate, done, j.BytesRestored, j.BytesRestored)
	if err := s.saveRestore(ctx, j); err != nil {
		s.log.Error("record restore job", "job", j.JobID, "err", err)
	}
}

// DescribeRestoreJob returns a restore job of the account.
func (s *Service) DescribeRestoreJob(ctx context.Context, account, id string) (*RestoreJob, error) {
	return readRecord[RestoreJob](ctx, s.cat, spaceRestoreJobs, account, id, "Restore job %s does not exist.")
}

// ListRestoreJobs returns the account's restore jobs, newest first; the
// filter's State selects by status.
func (s *Service) ListRestoreJobs(ctx context.Context, account string, f JobFilter) ([]*RestoreJob, error) {
	var out []*RestoreJob
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceRestoreJobs, key(account), func(_, v []byte) error {
			j := &RestoreJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if (f.State == "" || f.State == j.Status) && inRange(j.CreationDate, f.CreatedAfter, f.CreatedBefore) {
				out = append(out, j)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, k int) bool { return out[i].CreationDate.After(out[k].CreationDate) })
	return out, err
}

// errJob wraps a cause in the message a failed job shows.
func errJob(format string, args ...any) error {
	return errorf(ErrInvalidRequest, format, args...)
}

// readRecord reads one record of the account from a keyspace, or answers
// not found with notFound (a format taking the ID).
func readRecord[T any](ctx context.Context, cat *Catalog, space, account, id, notFound string) (*T, error) {
	v := new(T)
	err := cat.view(ctx, func(tx meta.Tx) error {
		ok, err := getJSON(tx, space, key(account, id), v)
		if err == nil && !ok {
			err = errorf(ErrNotFound, notFound, id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// IsSecretMetadata reports whether a restore metadata key holds a secret
// (a target database's password): it is given to the provider and never
// stored with the job, nor shown.
func IsSecretMetadata(k string) bool {
	return strings.Contains(strings.ToLower(k), "password")
}

func withoutSecrets(md map[string]string) map[string]string {
	out := maps.Clone(md)
	maps.DeleteFunc(out, func(k, _ string) bool { return IsSecretMetadata(k) })
	return out
}
