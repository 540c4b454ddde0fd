package backup

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// A report is a table: AWS's columns for its template, as far as they
// apply to Bulwark. The CSV has a header row of the columns' titles; the
// JSON is AWS's {"reportItems": [...]}, one object a row whose members are
// the columns' keys, in column order.

// reportColumn is a column of a report: its CSV title and JSON key.
type reportColumn struct{ title, key string }

type reportTable struct {
	cols []reportColumn
	rows [][]string
}

var (
	colsCommon = []reportColumn{{"Report Time Period", "reportTimePeriod"}, {"Account ID", "accountId"}, {"Region", "region"}}
	colsJob    = []reportColumn{{"Job Status", "jobStatus"}, {"Status Message", "statusMessage"}, {"Resource Type", "resourceType"},
		{"Resource ARN", "resourceArn"}, {"Resource Name", "resourceName"}}
	colsTimes = []reportColumn{{"Creation Time", "creationDate"}, {"Completion Time", "completionDate"}, {"Backup Size", "backupSizeInBytes"}}

	reportColumns = map[string][]reportColumn{
		TemplateControlCompliance: slices.Concat(colsCommon, []reportColumn{{"Framework Name", "frameworkName"}, {"Framework ARN", "frameworkArn"},
			{"Control Name", "controlName"}, {"Control Compliance Status", "controlComplianceStatus"},
			{"Compliant Resources", "compliantResourceCount"}, {"Non-Compliant Resources", "nonCompliantResourceCount"},
			{"Evaluation Time", "evaluationTime"}}),
		TemplateResourceCompliance: slices.Concat(colsCommon, []reportColumn{{"Framework Name", "frameworkName"}, {"Control Name", "controlName"},
			{"Resource Type", "resourceType"}, {"Resource ARN", "resourceArn"}, {"Resource Name", "resourceName"},
			{"Compliance Status", "complianceStatus"}, {"Compliance Reason", "complianceReason"}, {"Evaluation Time", "evaluationTime"}}),
		TemplateBackupJobs: slices.Concat(colsCommon, []reportColumn{{"Job ID", "backupJobId"}}, colsJob,
			[]reportColumn{{"Backup Plan ARN", "backupPlanArn"}, {"Backup Rule ID", "backupRuleId"}}, colsTimes,
			[]reportColumn{{"Vault ARN", "backupVaultArn"}, {"Recovery Point ARN", "recoveryPointArn"}, {"IAM Role ARN", "iamRoleArn"}}),
		TemplateCopyJobs: slices.Concat(colsCommon, []reportColumn{{"Job ID", "copyJobId"}}, colsJob,
			[]reportColumn{{"Backup Plan ARN", "backupPlanArn"}}, colsTimes,
			[]reportColumn{{"Source Vault ARN", "sourceBackupVaultArn"}, {"Source Recovery Point ARN", "sourceRecoveryPointArn"},
				{"Destination Vault ARN", "destinationBackupVaultArn"}, {"Destination Recovery Point ARN", "destinationRecoveryPointArn"},
				{"IAM Role ARN", "iamRoleArn"}}),
		TemplateRestoreJobs: slices.Concat(colsCommon, []reportColumn{{"Job ID", "restoreJobId"}}, colsJob, colsTimes,
			[]reportColumn{{"Recovery Point ARN", "recoveryPointArn"}, {"Created Resource ARN", "createdResourceArn"}, {"IAM Role ARN", "iamRoleArn"}}),
	}
)

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func stampp(t *time.Time) string {
	if t == nil {
		return ""
	}
	return stamp(*t)
}

// inPeriod says whether a job belongs in a report of [from, to]: made or
// ended in it, or not ended.
func inPeriod(created time.Time, ended *time.Time, from, to time.Time) bool {
	if ended == nil {
		return !created.After(to)
	}
	in := func(t time.Time) bool { return !t.Before(from) && !t.After(to) }
	return in(created) || in(*ended)
}

// buildReport makes the table of a report job of plan p.
func (a *Audit) buildReport(ctx context.Context, j *ReportJob, p *ReportPlan) (*reportTable, error) {
	to := j.CreationTime
	from := to.Add(-reportPeriod)
	common := []string{stamp(from) + " - " + stamp(to), j.AccountID, a.cat.region}
	t := &reportTable{cols: reportColumns[j.ReportTemplate]}
	add := func(cells ...string) { t.rows = append(t.rows, slices.Concat(common, cells)) }
	switch j.ReportTemplate {
	case TemplateControlCompliance, TemplateResourceCompliance:
		return t, a.complianceRows(ctx, j, p, add)
	case TemplateBackupJobs:
		jobs, err := a.jobs.ListBackupJobs(ctx, j.AccountID, JobFilter{})
		if err != nil {
			return nil, err
		}
		for _, b := range jobs {
			if !inPeriod(b.CreationDate, b.CompletionDate, from, to) {
				continue
			}
			plan, rule := "", ""
			if b.CreatedBy != nil {
				plan, rule = b.CreatedBy.BackupPlanArn, b.CreatedBy.BackupRuleId
			}
			add(b.JobID, b.State, b.StatusMessage, b.ResourceType, b.ResourceARN, a.jobs.providers.ResourceName(b.ResourceARN), plan, rule,
				stamp(b.CreationDate), stampp(b.CompletionDate), strconv.FormatInt(b.BackupSizeInBytes, 10), b.VaultARN, b.RecoveryPointARN, b.IAMRoleARN)
		}
	case TemplateCopyJobs:
		jobs, err := a.jobs.ListCopyJobs(ctx, j.AccountID, CopyJobFilter{})
		if err != nil {
			return nil, err
		}
		for _, c := range jobs {
			if !inPeriod(c.CreationDate, c.CompletionDate, from, to) {
				continue
			}
			plan := ""
			if c.CreatedBy != nil {
				plan = c.CreatedBy.BackupPlanArn
			}
			add(c.CopyJobID, c.State, c.StatusMessage, c.ResourceType, c.ResourceARN, a.jobs.providers.ResourceName(c.ResourceARN), plan,
				stamp(c.CreationDate), stampp(c.CompletionDate), strconv.FormatInt(c.BackupSizeInBytes, 10),
				c.SourceBackupVaultARN, c.SourceRecoveryPointARN, c.DestinationBackupVaultARN, c.DestinationRecoveryPointARN, c.IAMRoleARN)
		}
	case TemplateRestoreJobs:
		return t, a.restoreRows(ctx, j.AccountID, from, to, add)
	}
	return t, nil
}

// restoreRows adds the restore jobs of the period; a restore job records
// its point, whose resource is the row's.
func (a *Audit) restoreRows(ctx context.Context, account string, from, to time.Time, add func(...string)) error {
	jobs, err := a.jobs.ListRestoreJobs(ctx, account, JobFilter{})
	if err != nil {
		return err
	}
	points, err := a.jobs.ListRecoveryPoints(ctx, account, "", "")
	if err != nil {
		return err
	}
	byARN := map[string]*RecoveryPoint{}
	for _, p := range points {
		byARN[p.ARN] = p
	}
	for _, r := range jobs {
		if !inPeriod(r.CreationDate, r.CompletionDate, from, to) {
			continue
		}
		resource := ""
		if p := byARN[r.RecoveryPointARN]; p != nil {
			resource = p.ResourceARN
		}
		name := ""
		if resource != "" {
			name = a.jobs.providers.ResourceName(resource)
		}
		add(r.JobID, r.Status, r.StatusMessage, r.ResourceType, resource, name, stamp(r.CreationDate), stampp(r.CompletionDate),
			strconv.FormatInt(r.BackupSizeInBytes, 10), r.RecoveryPointARN, r.CreatedResourceARN, r.IAMRoleARN)
	}
	return nil
}

// complianceRows evaluates the plan's frameworks now: a row per control,
// or per control and resource.
func (a *Audit) complianceRows(ctx context.Context, j *ReportJob, p *ReportPlan, add func(...string)) error {
	frameworks, err := a.ListFrameworks(ctx, j.AccountID)
	if err != nil {
		return err
	}
	snap, err := a.Snapshot(ctx, j.AccountID)
	if err != nil {
		return err
	}
	for _, arn := range p.ReportSetting.FrameworkArns {
		i := slices.IndexFunc(frameworks, func(f *Framework) bool { return f.FrameworkArn == arn })
		if i < 0 {
			return errorf(ErrNotFound, "Framework %s of the report plan no longer exists.", arn)
		}
		f := frameworks[i]
		ev := evaluateFramework(snap, f)
		at := stamp(ev.EvaluatedAt)
		for _, c := range ev.Controls {
			if j.ReportTemplate == TemplateControlCompliance {
				add(f.FrameworkName, f.FrameworkArn, c.ControlName, c.Status, strconv.Itoa(c.Compliant), strconv.Itoa(c.NonCompliant), at)
				continue
			}
			for _, r := range c.Resources {
				add(f.FrameworkName, c.ControlName, r.ResourceType, r.ResourceARN, r.ResourceName, r.Status, r.Reason, at)
			}
		}
	}
	return nil
}

func (t *reportTable) csv() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := make([]string, len(t.cols))
	for i, c := range t.cols {
		head[i] = c.title
	}
	_ = w.Write(head) // a bytes.Buffer does not fail
	_ = w.WriteAll(t.rows)
	return b.Bytes()
}

func (t *reportTable) json() []byte {
	var b bytes.Buffer
	b.WriteString(`{"reportItems":[`)
	for i, row := range t.rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for k, c := range t.cols {
			if k > 0 {
				b.WriteByte(',')
			}
			key, _ := json.Marshal(c.key)
			val, _ := json.Marshal(row[k])
			b.Write(key)
			b.WriteByte(':')
			b.Write(val)
		}
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	return b.Bytes()
}
