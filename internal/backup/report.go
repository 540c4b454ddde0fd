package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// Report templates.
const (
	TemplateResourceCompliance = "RESOURCE_COMPLIANCE_REPORT"
	TemplateControlCompliance  = "CONTROL_COMPLIANCE_REPORT"
	TemplateBackupJobs         = "BACKUP_JOB_REPORT"
	TemplateCopyJobs           = "COPY_JOB_REPORT"
	TemplateRestoreJobs        = "RESTORE_JOB_REPORT"
)

// Report formats.
const (
	FormatCSV  = "CSV"
	FormatJSON = "JSON"
)

// Report job statuses.
const (
	ReportCreated   = "CREATED"
	ReportRunning   = "RUNNING"
	ReportCompleted = "COMPLETED"
	ReportFailed    = "FAILED"
)

// reportHour is the hour (UTC) from which the scheduler starts a plan's
// daily report: AWS makes them between 1 and 5 AM UTC.
const reportHour = 1

// reportPeriod is what a report covers: the 24 hours before its job.
const reportPeriod = 24 * time.Hour

var reportTemplates = []string{TemplateResourceCompliance, TemplateControlCompliance, TemplateBackupJobs, TemplateCopyJobs, TemplateRestoreJobs}

// ReportDeliveryChannel says where a report plan's reports go.
type ReportDeliveryChannel struct {
	S3BucketName string
	S3KeyPrefix  string   `json:",omitempty"`
	Formats      []string `json:",omitempty"`
}

// ReportSetting says what a report plan reports.
type ReportSetting struct {
	ReportTemplate     string
	FrameworkArns      []string `json:",omitempty"`
	NumberOfFrameworks int      `json:",omitempty"`
	Accounts           []string `json:",omitempty"`
	OrganizationUnits  []string `json:",omitempty"`
	Regions            []string `json:",omitempty"`
}

// ReportPlan is a report plan as the catalog keeps it.
type ReportPlan struct {
	ReportPlanArn               string
	ReportPlanName              string
	ReportPlanDescription       string `json:",omitempty"`
	ReportSetting               ReportSetting
	ReportDeliveryChannel       ReportDeliveryChannel
	DeploymentStatus            string
	CreationTime                time.Time
	LastAttemptedExecutionTime  *time.Time `json:",omitempty"`
	LastSuccessfulExecutionTime *time.Time `json:",omitempty"`
	IdempotencyToken            string     `json:",omitempty"`
	UpdateToken                 string     `json:",omitempty"`
	// ScheduledDay is the UTC day (2006-01-02) of the plan's last daily
	// report, or of its creation: the scheduler starts the next one the
	// day after.
	ScheduledDay string
}

// ReportPlanInput is what CreateReportPlan is given.
type ReportPlanInput struct {
	ReportPlanName        string
	ReportPlanDescription string
	ReportSetting         *ReportSetting
	ReportDeliveryChannel *ReportDeliveryChannel
	ReportPlanTags        map[string]string
	IdempotencyToken      string
}

// ReportPlanUpdate is what UpdateReportPlan is given: nil members keep
// their value.
type ReportPlanUpdate struct {
	ReportPlanDescription *string
	ReportSetting         *ReportSetting
	ReportDeliveryChannel *ReportDeliveryChannel
	IdempotencyToken      string
}

// ReportDestination is where a report job wrote its files.
type ReportDestination struct {
	S3BucketName string
	S3Keys       []string
}

// ReportJob is one run of a report plan.
type ReportJob struct {
	AccountID         string
	ReportJobId       string
	ReportPlanArn     string
	ReportPlanName    string
	ReportTemplate    string
	CreationTime      time.Time
	CompletionTime    *time.Time `json:",omitempty"`
	Status            string
	StatusMessage     string             `json:",omitempty"`
	ReportDestination *ReportDestination `json:",omitempty"`
	IdempotencyToken  string             `json:",omitempty"`
}

// ReportPlanARNPrefix is what the ARNs of the account's report plans
// start with.
func (a *Audit) ReportPlanARNPrefix(account string) string {
	return "arn:aws:backup:" + a.cat.region + ":" + account + ":report-plan:"
}

func validateChannel(c *ReportDeliveryChannel) error {
	if c == nil {
		return errorf(ErrMissingParameter, "Missing required parameter ReportDeliveryChannel.")
	}
	if c.S3BucketName == "" {
		return errorf(ErrMissingParameter, "Missing required parameter ReportDeliveryChannel.S3BucketName.")
	}
	if len(c.S3BucketName) < 3 || len(c.S3BucketName) > 63 || strings.ContainsAny(c.S3BucketName, "/ ") {
		return errorf(ErrInvalidParameter, "Invalid S3BucketName %q: it must be the name of a bucket.", c.S3BucketName)
	}
	if strings.HasPrefix(c.S3KeyPrefix, "/") || len(c.S3KeyPrefix) > 512 {
		return errorf(ErrInvalidParameter, "Invalid S3KeyPrefix %q: it must have at most 512 characters and not start with '/'.", c.S3KeyPrefix)
	}
	if len(c.Formats) == 0 {
		c.Formats = []string{FormatCSV}
	}
	seen := map[string]bool{}
	for _, f := range c.Formats {
		if f != FormatCSV && f != FormatJSON || seen[f] {
			return errorf(ErrInvalidParameter, "Invalid Formats %v: it lists CSV, JSON or both, once each.", c.Formats)
		}
		seen[f] = true
	}
	return nil
}

// validateSetting checks a report setting against the account's
// frameworks. Bulwark has no AWS Organizations and reports on its own
// region: Accounts and Regions may name only the caller's account and the
// plan's region, and OrganizationUnits nothing.
func (a *Audit) validateSetting(tx meta.Tx, account string, s *ReportSetting) error {
	if s == nil {
		return errorf(ErrMissingParameter, "Missing required parameter ReportSetting.")
	}
	if s.ReportTemplate == "" {
		return errorf(ErrMissingParameter, "Missing required parameter ReportSetting.ReportTemplate.")
	}
	if !slices.Contains(reportTemplates, s.ReportTemplate) {
		return errorf(ErrInvalidParameter, "Invalid ReportTemplate %q: it must be one of %s.", s.ReportTemplate, strings.Join(reportTemplates, ", "))
	}
	compliance := s.ReportTemplate == TemplateResourceCompliance || s.ReportTemplate == TemplateControlCompliance
	switch {
	case compliance && len(s.FrameworkArns) == 0:
		return errorf(ErrMissingParameter, "Missing required parameter ReportSetting.FrameworkArns: a %s reports on frameworks.", s.ReportTemplate)
	case !compliance && len(s.FrameworkArns) > 0:
		return errorf(ErrInvalidParameter, "ReportSetting.FrameworkArns applies to compliance reports only, not to a %s.", s.ReportTemplate)
	}
	if len(s.FrameworkArns) > 0 {
		frameworks, err := listNamed[Framework](tx, spaceFrameworks, account)
		if err != nil {
			return err
		}
		for _, arn := range s.FrameworkArns {
			if !slices.ContainsFunc(frameworks, func(f *Framework) bool { return f.FrameworkArn == arn }) {
				return errorf(ErrInvalidParameter, "Invalid FrameworkArns entry %q: no framework of account %s in %s has it.", arn, account, a.cat.region)
			}
		}
	}
	if len(s.OrganizationUnits) > 0 {
		return errorf(ErrInvalidParameter, "ReportSetting.OrganizationUnits cannot apply: Bulwark has no AWS Organizations.")
	}
	for _, acct := range s.Accounts {
		if acct != account && acct != "ROOT" {
			return errorf(ErrInvalidParameter, "Invalid Accounts entry %q: a report plan reports on its own account (%s) only.", acct, account)
		}
	}
	for _, r := range s.Regions {
		if r != a.cat.region && r != "*" {
			return errorf(ErrInvalidParameter, "Invalid Regions entry %q: a report plan of %s reports on its own region only.", r, a.cat.region)
		}
	}
	s.NumberOfFrameworks = len(s.FrameworkArns)
	return nil
}

// CreateReportPlan validates and stores a report plan with its tags. A
// retry with the IdempotencyToken and the request of an earlier call
// answers that call's plan.
func (a *Audit) CreateReportPlan(ctx context.Context, account string, in ReportPlanInput) (*ReportPlan, error) {
	if err := validateAuditName("ReportPlanName", in.ReportPlanName); err != nil {
		return nil, err
	}
	if err := validateDescription("ReportPlanDescription", in.ReportPlanDescription); err != nil {
		return nil, err
	}
	if err := validateTags(in.ReportPlanTags); err != nil {
		return nil, err
	}
	if err := validateChannel(in.ReportDeliveryChannel); err != nil {
		return nil, err
	}
	now := a.cat.clock()
	var out *ReportPlan
	err := a.cat.update(ctx, func(tx meta.Tx) error {
		if in.ReportSetting == nil {
			return errorf(ErrMissingParameter, "Missing required parameter ReportSetting.")
		}
		setting := *in.ReportSetting
		if err := a.validateSetting(tx, account, &setting); err != nil {
			return err
		}
		p := &ReportPlan{
			ReportPlanArn:  a.ReportPlanARNPrefix(account) + in.ReportPlanName + "-" + newUUID(),
			ReportPlanName: in.ReportPlanName, ReportPlanDescription: in.ReportPlanDescription, ReportSetting: setting,
			ReportDeliveryChannel: *in.ReportDeliveryChannel, DeploymentStatus: DeploymentCompleted, CreationTime: now,
			IdempotencyToken: in.IdempotencyToken, ScheduledDay: now.Format(time.DateOnly),
		}
		all, err := listNamed[ReportPlan](tx, spaceReportPlans, account)
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.ReportPlanName == p.ReportPlanName {
				if in.IdempotencyToken != "" && o.IdempotencyToken == in.IdempotencyToken && sameReportPlan(o, p) {
					out = o
					return nil
				}
				return &Error{Kind: ErrAlreadyExists, Message: "A report plan named " + p.ReportPlanName + " already exists.", ARN: o.ReportPlanArn}
			}
		}
		if len(all) >= MaxReportPlans {
			return errorf(ErrLimitExceeded, "The number of report plans in the account would exceed %d.", MaxReportPlans)
		}
		out = p
		if len(in.ReportPlanTags) > 0 {
			if err := putJSON(tx, spaceTags, []byte(p.ReportPlanArn), in.ReportPlanTags); err != nil {
				return err
			}
		}
		return putJSON(tx, spaceReportPlans, key(account, p.ReportPlanName), p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func sameReportPlan(a, b *ReportPlan) bool {
	return a.ReportPlanDescription == b.ReportPlanDescription &&
		fmt.Sprint(a.ReportSetting) == fmt.Sprint(b.ReportSetting) && fmt.Sprint(a.ReportDeliveryChannel) == fmt.Sprint(b.ReportDeliveryChannel)
}

// DescribeReportPlan returns a report plan of the account by name.
func (a *Audit) DescribeReportPlan(ctx context.Context, account, name string) (*ReportPlan, error) {
	var out *ReportPlan
	err := a.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		out, err = getNamed[ReportPlan](tx, spaceReportPlans, account, name, "Report plan")
		return err
	})
	return out, err
}

// ListReportPlans returns the account's report plans, oldest first.
func (a *Audit) ListReportPlans(ctx context.Context, account string) ([]*ReportPlan, error) {
	var out []*ReportPlan
	err := a.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		out, err = listNamed[ReportPlan](tx, spaceReportPlans, account)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationTime.Before(out[j].CreationTime) })
	return out, err
}

// UpdateReportPlan replaces the members u sets. A retry with the
// idempotency token of the last update changes nothing.
func (a *Audit) UpdateReportPlan(ctx context.Context, account, name string, u ReportPlanUpdate) (*ReportPlan, error) {
	if u.ReportPlanDescription != nil {
		if err := validateDescription("ReportPlanDescription", *u.ReportPlanDescription); err != nil {
			return nil, err
		}
	}
	if u.ReportDeliveryChannel != nil {
		if err := validateChannel(u.ReportDeliveryChannel); err != nil {
			return nil, err
		}
	}
	var out *ReportPlan
	err := a.cat.update(ctx, func(tx meta.Tx) error {
		p, err := getNamed[ReportPlan](tx, spaceReportPlans, account, name, "Report plan")
		if err != nil {
			return err
		}
		out = p
		if u.IdempotencyToken != "" && u.IdempotencyToken == p.UpdateToken {
			return nil
		}
		if u.ReportSetting != nil {
			s := *u.ReportSetting
			if err := a.validateSetting(tx, account, &s); err != nil {
				return err
			}
			p.ReportSetting = s
		}
		if u.ReportPlanDescription != nil {
			p.ReportPlanDescription = *u.ReportPlanDescription
		}
		if u.ReportDeliveryChannel != nil {
			p.ReportDeliveryChannel = *u.ReportDeliveryChannel
		}
		p.UpdateToken = u.IdempotencyToken
		return putJSON(tx, spaceReportPlans, key(account, name), p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteReportPlan deletes a report plan and its tags; its report jobs
// stay, as AWS keeps them.
func (a *Audit) DeleteReportPlan(ctx context.Context, account, name string) error {
	return a.cat.update(ctx, func(tx meta.Tx) error {
		p, err := getNamed[ReportPlan](tx, spaceReportPlans, account, name, "Report plan")
		if err != nil {
			return err
		}
		if err := tx.Delete(spaceTags, []byte(p.ReportPlanArn)); err != nil {
			return err
		}
		return tx.Delete(spaceReportPlans, key(account, name))
	})
}

// StartReportJob starts a report job of a plan, run in a goroutine of the
// job service. A retry with the idempotency token of a job started within
// the hour answers that job.
func (a *Audit) StartReportJob(ctx context.Context, account, planName, token string) (*ReportJob, error) {
	p, err := a.DescribeReportPlan(ctx, account, planName)
	if err != nil {
		return nil, err
	}
	now := a.cat.clock()
	j := &ReportJob{AccountID: account, ReportJobId: newUUID(), ReportPlanArn: p.ReportPlanArn, ReportPlanName: p.ReportPlanName,
		ReportTemplate: p.ReportSetting.ReportTemplate, CreationTime: now, Status: ReportCreated, IdempotencyToken: token}
	a.jobs.startMu.Lock()
	defer a.jobs.startMu.Unlock()
	if token != "" {
		jobs, err := a.ListReportJobs(ctx, account, ReportJobFilter{})
		if err != nil {
			return nil, err
		}
		earlier, err := reuse(jobs, token, now, func(o *ReportJob) (string, time.Time) { return o.IdempotencyToken, o.CreationTime },
			func(o *ReportJob) bool { return o.ReportPlanArn == p.ReportPlanArn })
		if err != nil || earlier != nil {
			return earlier, err
		}
	}
	if err := a.saveReportJob(ctx, j); err != nil {
		return nil, err
	}
	snapshot := *j
	if !a.jobs.start(func(ctx context.Context) { a.runReportJob(ctx, j) }) {
		return nil, vault.ErrClosed
	}
	return &snapshot, nil
}

func (a *Audit) saveReportJob(ctx context.Context, j *ReportJob) error {
	return a.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		return putJSON(tx, spaceReportJobs, key(j.AccountID, j.ReportJobId), j)
	})
}

// runReportJob makes the report of the job's plan as it is now and writes
// it, in each of the plan's formats, into the plan's bucket.
func (a *Audit) runReportJob(ctx context.Context, j *ReportJob) {
	j.Status = ReportRunning
	if err := a.saveReportJob(ctx, j); err != nil {
		a.log.Error("save report job", "job", j.ReportJobId, "err", err)
	}
	keys, err := a.deliver(ctx, j)
	now := a.cat.clock()
	j.CompletionTime = &now
	if err != nil {
		j.Status, j.StatusMessage = ReportFailed, jobMessage(ctx, err)
		a.log.Warn("report job failed", "job", j.ReportJobId, "plan", j.ReportPlanName, "err", err)
	} else {
		j.Status = ReportCompleted
	}
	if len(keys) > 0 {
		j.ReportDestination.S3Keys = keys
	}
	err = a.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		p, err := getNamed[ReportPlan](tx, spaceReportPlans, j.AccountID, j.ReportPlanName, "Report plan")
		if err == nil && p.ReportPlanArn == j.ReportPlanArn {
			p.LastAttemptedExecutionTime = &j.CreationTime
			if j.Status == ReportCompleted {
				p.LastSuccessfulExecutionTime = &j.CreationTime
			}
			if err := putJSON(tx, spaceReportPlans, key(j.AccountID, j.ReportPlanName), p); err != nil {
				return err
			}
		}
		return putJSON(tx, spaceReportJobs, key(j.AccountID, j.ReportJobId), j)
	})
	if err != nil {
		a.log.Error("save report job", "job", j.ReportJobId, "err", err)
	}
}

// deliver builds the job's report and writes its files, returning the
// keys written.
func (a *Audit) deliver(ctx context.Context, j *ReportJob) ([]string, error) {
	p, err := a.DescribeReportPlan(ctx, j.AccountID, j.ReportPlanName)
	if err == nil && p.ReportPlanArn != j.ReportPlanArn {
		err = errorf(ErrNotFound, "Report plan %s was deleted.", j.ReportPlanName)
	}
	if err != nil {
		return nil, err
	}
	ch := p.ReportDeliveryChannel
	j.ReportDestination = &ReportDestination{S3BucketName: ch.S3BucketName}
	if a.writer == nil {
		return nil, errors.New("this region delivers no reports: it has no report writer")
	}
	table, err := a.buildReport(ctx, j, p)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, f := range ch.Formats {
		k := reportKey(ch.S3KeyPrefix, j, a.cat.region, f)
		body, ctype := table.csv(), "text/csv"
		if f == FormatJSON {
			body, ctype = table.json(), "application/json"
		}
		if err := a.writer.WriteReport(ctx, j.AccountID, ch.S3BucketName, k, ctype, body); err != nil {
			return keys, fmt.Errorf("write report s3://%s/%s: %w", ch.S3BucketName, k, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// reportKey names a report file as AWS lays them out:
// PREFIX/Backup/ACCOUNT/REGION/YYYY/MM/DD/PLAN/TEMPLATE_JOBID.csv|json.
func reportKey(prefix string, j *ReportJob, region, format string) string {
	k := fmt.Sprintf("Backup/%s/%s/%s/%s/%s_%s.%s", j.AccountID, region, j.CreationTime.UTC().Format("2006/01/02"), j.ReportPlanName,
		j.ReportTemplate, j.ReportJobId, strings.ToLower(format))
	if prefix = strings.TrimSuffix(prefix, "/"); prefix != "" {
		k = prefix + "/" + k
	}
	return k
}

// ReportJobFilter selects report jobs; empty fields select all.
type ReportJobFilter struct {
	ReportPlanName              string
	Status                      string
	CreatedAfter, CreatedBefore time.Time
}

// DescribeReportJob returns a report job of the account.
func (a *Audit) DescribeReportJob(ctx context.Context, account, id string) (*ReportJob, error) {
	return readRecord[ReportJob](ctx, a.cat, spaceReportJobs, account, id, "Report job %s does not exist.")
}

// ListReportJobs returns the account's report jobs that pass f, newest
// first.
func (a *Audit) ListReportJobs(ctx context.Context, account string, f ReportJobFilter) ([]*ReportJob, error) {
	var out []*ReportJob
	err := a.cat.view(ctx, func(tx meta.Tx) error {
		all, err := listNamed[ReportJob](tx, spaceReportJobs, account)
		for _, j := range all {
			if (f.ReportPlanName == "" || f.ReportPlanName == j.ReportPlanName) && (f.Status == "" || f.Status == j.Status) &&
				inRange(j.CreationTime, f.CreatedAfter, f.CreatedBefore) {
				out = append(out, j)
			}
		}
		return err
	})
	sort.SliceStable(out, func(i, k int) bool { return out[i].CreationTime.After(out[k].CreationTime) })
	return out, err
}

// StartDueReports starts the daily report job of every report plan of the
// region not yet run today (UTC), from reportHour on: the scheduler's
// pass calls it. The job's idempotency token names the plan and the day,
// so a pass repeated after a crash does not start a second one.
func (a *Audit) StartDueReports(ctx context.Context, now time.Time) error {
	now = now.UTC()
	if now.Hour() < reportHour {
		return nil
	}
	day := now.Format(time.DateOnly)
	accounts, err := a.cat.accountsIn(ctx, spaceReportPlans)
	if err != nil {
		return err
	}
	var errs []error
	for _, account := range accounts {
		plans, err := a.ListReportPlans(ctx, account)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range plans {
			if p.ScheduledDay >= day {
				continue
			}
			if _, err := a.StartReportJob(ctx, account, p.ReportPlanName, "daily-"+day+"-"+p.ReportPlanName); err != nil {
				errs = append(errs, fmt.Errorf("report plan %s of %s: %w", p.ReportPlanName, account, err))
				continue
			}
			err := a.cat.update(ctx, func(tx meta.Tx) error {
				cur, err := getNamed[ReportPlan](tx, spaceReportPlans, account, p.ReportPlanName, "Report plan")
				if err != nil || cur.ReportPlanArn != p.ReportPlanArn {
					return err
				}
				cur.ScheduledDay = day
				return putJSON(tx, spaceReportPlans, key(account, p.ReportPlanName), cur)
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
