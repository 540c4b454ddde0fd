package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/aws/smithy-go"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/schedule"
)

const backupUsage = `Usage: bulwark backup <command> [flags]

Commands:
  status   show each plan rule's schedule, next runs and last job, and each
           protected resource's recovery points

They call the AWS Backup API of the region at -endpoint, as the aws CLI does.
Run "bulwark backup <command> -h" for a command's flags.
`

// timeLayout writes every time of backup status, with its zone.
const timeLayout = "2006-01-02 15:04:05 MST"

func (m *Main) backup(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, backupUsage)
		return errUsage
	}
	switch args[0] {
	case "status":
		return m.backupStatus(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, backupUsage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "bulwark backup: unknown command %q\n\n%s", args[0], backupUsage)
		return errUsage
	}
}

// backupStatus is what backup status shows, and its -json.
type backupStatus struct {
	Endpoint  string           `json:"endpoint"`
	Region    string           `json:"region"`
	Now       time.Time        `json:"now"`
	Rules     []ruleStatus     `json:"rules"`
	Resources []resourceStatus `json:"resources"`
}

type ruleStatus struct {
	Plan     string `json:"plan"`
	PlanID   string `json:"planId"`
	Rule     string `json:"rule"`
	RuleID   string `json:"ruleId"`
	Vault    string `json:"vault"`
	Schedule string `json:"schedule"`
	Timezone string `json:"timezone"`
	// NextRuns are in the rule's time zone; Problem says why there are
	// none when the schedule or zone cannot be read.
	NextRuns []time.Time `json:"nextRuns"`
	Problem  string      `json:"problem,omitempty"`
	LastJob  *jobStatus  `json:"lastJob,omitempty"`
	loc      *time.Location
}

type jobStatus struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	PercentDone string     `json:"percentDone"`
	Created     time.Time  `json:"created"`
	Completed   *time.Time `json:"completed,omitempty"`
	Message     string     `json:"message,omitempty"`
}

type resourceStatus struct {
	ARN        string    `json:"arn"`
	LastBackup time.Time `json:"lastBackup"`
	LastVault  string    `json:"lastVault"`
	// LastRestore is the creation of the newest completed restore of one
	// of the resource's points; RestoreMinutes is how long it took.
	LastRestore    *time.Time    `json:"lastRestore,omitempty"`
	RestoreMinutes *int64        `json:"restoreMinutes,omitempty"`
	Points         []pointStatus `json:"recoveryPoints"`
}

type pointStatus struct {
	ARN          string     `json:"arn"`
	Vault        string     `json:"vault"`
	Created      time.Time  `json:"created"`
	Status       string     `json:"status"`
	Size         int64      `json:"size"`
	StorageClass string     `json:"storageClass"`
	Expires      *time.Time `json:"expires,omitempty"`
}

func (m *Main) backupStatus(ctx context.Context, args []string) error {
	fs := m.flags("backup status")
	af := m.addAdminFlags(fs)
	next := fs.Int("next", 3, "how many next run times to show per rule")
	maxPoints := fs.Int("points", 10, "how many of each resource's newest recovery points to show (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *next < 0 || *maxPoints < 0 {
		fmt.Fprintln(m.Stderr, "-next and -points must not be negative")
		return errUsage
	}
	ac, err := af.client(m, "")
	if err != nil {
		return err
	}
	c := awsbackup.New(awsbackup.Options{
		Region: ac.region, BaseEndpoint: aws.String(ac.endpoint), HTTPClient: ac.http,
		Credentials: awscreds.StaticCredentialsProvider{Value: ac.creds},
	})
	st := &backupStatus{Endpoint: ac.endpoint, Now: time.Now()}
	vaults, err := drain(ctx, awsbackup.NewListBackupVaultsPaginator(c, &awsbackup.ListBackupVaultsInput{}),
		func(o *awsbackup.ListBackupVaultsOutput) []types.BackupVaultListMember { return o.BackupVaultList })
	if err == nil {
		// Every account has its Default vault, whose ARN names the region
		// the endpoint serves.
		if len(vaults) > 0 {
			if a, err := arn.Parse(aws.ToString(vaults[0].BackupVaultArn)); err == nil {
				st.Region = a.Region
			}
		}
		st.Rules, err = ruleStatuses(ctx, c, st.Now, *next)
	}
	if err == nil {
		st.Resources, err = resourceStatuses(ctx, c, vaults, *maxPoints)
	}
	if err != nil {
		return backupError(ac.endpoint, err)
	}
	if *af.json {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printBackupStatus(m.Stdout, st)
	return nil
}

// backupError shortens the SDK's errors to what the server said, or says
// that it did not answer.
func backupError(endpoint string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", ae.ErrorCode(), ae.ErrorMessage())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("no answer from %s (set -endpoint or BULWARK_ENDPOINT): %w", endpoint, err)
}

// pager is an SDK paginator.
type pager[O any] interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*awsbackup.Options)) (O, error)
}

// drain reads every page of p and returns their items.
func drain[O, T any](ctx context.Context, p pager[O], items func(O) []T) ([]T, error) {
	var out []T
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, items(pg)...)
	}
	return out, nil
}

// ruleStatuses lists the rules of every plan with their next runs and the
// newest job a run of theirs made.
func ruleStatuses(ctx context.Context, c *awsbackup.Client, now time.Time, next int) ([]ruleStatus, error) {
	plans, err := drain(ctx, awsbackup.NewListBackupPlansPaginator(c, &awsbackup.ListBackupPlansInput{}),
		func(o *awsbackup.ListBackupPlansOutput) []types.BackupPlansListMember { return o.BackupPlansList })
	if err != nil {
		return nil, err
	}
	jobs, err := drain(ctx, awsbackup.NewListBackupJobsPaginator(c, &awsbackup.ListBackupJobsInput{}),
		func(o *awsbackup.ListBackupJobsOutput) []types.BackupJob { return o.BackupJobs })
	if err != nil {
		return nil, err
	}
	last := map[[2]string]*types.BackupJob{}
	for i, j := range jobs {
		if j.CreatedBy == nil {
			continue
		}
		k := [2]string{aws.ToString(j.CreatedBy.BackupPlanId), aws.ToString(j.CreatedBy.BackupRuleId)}
		if l := last[k]; l == nil || aws.ToTime(j.CreationDate).After(aws.ToTime(l.CreationDate)) {
			last[k] = &jobs[i]
		}
	}
	var out []ruleStatus
	for _, p := range plans {
		got, err := c.GetBackupPlan(ctx, &awsbackup.GetBackupPlanInput{BackupPlanId: p.BackupPlanId})
		if err != nil {
			return nil, err
		}
		for _, r := range got.BackupPlan.Rules {
			rs := ruleStatus{
				Plan: aws.ToString(got.BackupPlan.BackupPlanName), PlanID: aws.ToString(p.BackupPlanId),
				Rule: aws.ToString(r.RuleName), RuleID: aws.ToString(r.RuleId), Vault: aws.ToString(r.TargetBackupVaultName),
				Schedule: aws.ToString(r.ScheduleExpression), Timezone: aws.ToString(r.ScheduleExpressionTimezone),
			}
			if err := rs.nextRuns(ctx, c, now, next); err != nil {
				return nil, err
			}
			if j := last[[2]string{rs.PlanID, rs.RuleID}]; j != nil {
				rs.LastJob = &jobStatus{
					ID: aws.ToString(j.BackupJobId), State: string(j.State), PercentDone: aws.ToString(j.PercentDone),
					Created: aws.ToTime(j.CreationDate), Completed: j.CompletionDate, Message: aws.ToString(j.StatusMessage),
				}
			}
			out = append(out, rs)
		}
	}
	return out, nil
}

// nextRuns works out the rule's next run times as the region's scheduler
// does: in the rule's time zone (UTC when the zone is unknown, as there),
// a rate counted from the creation of the first plan version that has the
// rule (when the scheduler first saw it).
func (rs *ruleStatus) nextRuns(ctx context.Context, c *awsbackup.Client, now time.Time, n int) error {
	if rs.Schedule == "" {
		rs.Schedule = backup.DefaultScheduleExpression
	}
	if rs.Timezone == "" {
		rs.Timezone = backup.DefaultTimezone
	}
	rs.loc = time.UTC
	if loc, err := time.LoadLocation(rs.Timezone); err == nil {
		rs.loc = loc
	} else {
		rs.Problem = fmt.Sprintf("time zone %s unknown here; times in UTC", rs.Timezone)
	}
	sched, err := schedule.Parse(rs.Schedule)
	if err != nil {
		rs.Problem = err.Error()
		return nil
	}
	if strings.HasPrefix(rs.Schedule, "rate(") {
		anchor, err := ruleAnchor(ctx, c, rs.PlanID, rs.RuleID)
		if err != nil {
			return err
		}
		sched = sched.Anchor(anchor)
	}
	for t := now; len(rs.NextRuns) < n; {
		if t = sched.Next(t, rs.loc); t.IsZero() {
			break
		}
		rs.NextRuns = append(rs.NextRuns, t)
	}
	return nil
}

// ruleAnchor returns the creation time of the oldest version of a plan
// that has the rule.
func ruleAnchor(ctx context.Context, c *awsbackup.Client, planID, ruleID string) (time.Time, error) {
	vs, err := drain(ctx, awsbackup.NewListBackupPlanVersionsPaginator(c, &awsbackup.ListBackupPlanVersionsInput{BackupPlanId: &planID}),
		func(o *awsbackup.ListBackupPlanVersionsOutput) []types.BackupPlansListMember {
			return o.BackupPlanVersionsList
		})
	if err != nil {
		return time.Time{}, err
	}
	slices.SortFunc(vs, func(a, b types.BackupPlansListMember) int {
		return aws.ToTime(a.CreationDate).Compare(aws.ToTime(b.CreationDate))
	})
	for _, v := range vs {
		got, err := c.GetBackupPlan(ctx, &awsbackup.GetBackupPlanInput{BackupPlanId: &planID, VersionId: v.VersionId})
		if err != nil {
			return time.Time{}, err
		}
		for _, r := range got.BackupPlan.Rules {
			if aws.ToString(r.RuleId) == ruleID {
				return aws.ToTime(v.CreationDate), nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("plan %s has no version with rule %s", planID, ruleID)
}

// resourceStatuses lists the protected resources with their latest restore
// and their newest recovery points in every vault (at most max, unless 0),
// newest first.
func resourceStatuses(ctx context.Context, c *awsbackup.Client, vaults []types.BackupVaultListMember, max int) ([]resourceStatus, error) {
	prs, err := drain(ctx, awsbackup.NewListProtectedResourcesPaginator(c, &awsbackup.ListProtectedResourcesInput{}),
		func(o *awsbackup.ListProtectedResourcesOutput) []types.ProtectedResource { return o.Results })
	if err != nil || len(prs) == 0 {
		return nil, err
	}
	points := map[string][]pointStatus{}
	for _, v := range vaults {
		ps, err := drain(ctx, awsbackup.NewListRecoveryPointsByBackupVaultPaginator(c, &awsbackup.ListRecoveryPointsByBackupVaultInput{BackupVaultName: v.BackupVaultName}),
			func(o *awsbackup.ListRecoveryPointsByBackupVaultOutput) []types.RecoveryPointByBackupVault {
				return o.RecoveryPoints
			})
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			points[aws.ToString(p.ResourceArn)] = append(points[aws.ToString(p.ResourceArn)], pointStatus{
				ARN: aws.ToString(p.RecoveryPointArn), Vault: aws.ToString(p.BackupVaultName), Created: aws.ToTime(p.CreationDate),
			})
		}
	}
	var out []resourceStatus
	for _, pr := range prs {
		d, err := c.DescribeProtectedResource(ctx, &awsbackup.DescribeProtectedResourceInput{ResourceArn: pr.ResourceArn})
		if err != nil {
			return nil, err
		}
		rs := resourceStatus{
			ARN: aws.ToString(pr.ResourceArn), LastBackup: aws.ToTime(pr.LastBackupTime), LastVault: vaultName(aws.ToString(pr.LastBackupVaultArn)),
			LastRestore: d.LatestRestoreJobCreationDate, RestoreMinutes: d.LatestRestoreExecutionTimeMinutes, Points: points[aws.ToString(pr.ResourceArn)],
		}
		slices.SortStableFunc(rs.Points, func(a, b pointStatus) int { return b.Created.Compare(a.Created) })
		if max > 0 && len(rs.Points) > max {
			rs.Points = rs.Points[:max]
		}
		// Only DescribeRecoveryPoint tells the storage class. A point
		// deleted since the listing is left out.
		kept := rs.Points[:0]
		for _, p := range rs.Points {
			var nf *types.ResourceNotFoundException
			if err := p.describe(ctx, c); errors.As(err, &nf) {
				continue
			} else if err != nil {
				return nil, err
			}
			kept = append(kept, p)
		}
		rs.Points = kept
		out = append(out, rs)
	}
	return out, nil
}

func (p *pointStatus) describe(ctx context.Context, c *awsbackup.Client) error {
	d, err := c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: &p.Vault, RecoveryPointArn: &p.ARN})
	if err != nil {
		return err
	}
	p.Status, p.Size, p.StorageClass = string(d.Status), aws.ToInt64(d.BackupSizeInBytes), string(d.StorageClass)
	if d.CalculatedLifecycle != nil {
		p.Expires = d.CalculatedLifecycle.DeleteAt
	}
	return nil
}

// vaultName is the last part of a vault's ARN.
func vaultName(arn string) string {
	return arn[strings.LastIndex(arn, ":")+1:]
}

func printBackupStatus(w io.Writer, st *backupStatus) {
	fmt.Fprintf(w, "region %s (%s)\n\n", orDash(st.Region), st.Endpoint)
	if len(st.Rules) == 0 {
		fmt.Fprintln(w, "no backup plans")
	} else {
		fmt.Fprintln(w, "backup plans")
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PLAN\tRULE\tVAULT\tSCHEDULE\tTIME ZONE\tNEXT RUNS\tLAST JOB")
		for _, r := range st.Rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Plan, r.Rule, r.Vault, r.Schedule, r.Timezone, nextRuns(r), lastJob(r))
		}
		tw.Flush()
		for _, r := range st.Rules {
			if r.Problem != "" {
				fmt.Fprintf(w, "rule %s of plan %s: %s\n", r.Rule, r.Plan, r.Problem)
			}
		}
	}
	fmt.Fprintln(w)
	if len(st.Resources) == 0 {
		fmt.Fprintln(w, "no protected resources: no resource has a recovery point")
		return
	}
	fmt.Fprintln(w, "protected resources")
	for _, r := range st.Resources {
		restore := "never restored"
		if r.LastRestore != nil {
			restore = "last restore " + r.LastRestore.Local().Format(timeLayout)
			if r.RestoreMinutes != nil {
				restore += fmt.Sprintf(" (%d min)", *r.RestoreMinutes)
			}
		}
		fmt.Fprintf(w, "\n%s  last backup %s in %s, %s\n", r.ARN, r.LastBackup.Local().Format(timeLayout), r.LastVault, restore)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VAULT\tCREATED\tSTATUS\tSIZE\tSTORAGE\tEXPIRES")
		for _, p := range r.Points {
			expires := "never"
			if p.Expires != nil {
				expires = p.Expires.Local().Format(timeLayout)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Vault, p.Created.Local().Format(timeLayout), p.Status,
				bytesize(p.Size), orDash(p.StorageClass), expires)
		}
		tw.Flush()
	}
}

// nextRuns writes a rule's next runs in its time zone.
func nextRuns(r ruleStatus) string {
	if len(r.NextRuns) == 0 {
		return "-"
	}
	s := make([]string, len(r.NextRuns))
	for i, t := range r.NextRuns {
		s[i] = t.In(r.loc).Format(timeLayout)
	}
	return strings.Join(s, ", ")
}

// lastJob writes the state of a rule's newest job and when it ended (or
// started, while it runs), in the rule's time zone.
func lastJob(r ruleStatus) string {
	j := r.LastJob
	if j == nil {
		return "never ran"
	}
	switch {
	case j.Completed != nil:
		return j.State + " " + j.Completed.In(r.loc).Format(timeLayout)
	case j.State == string(types.BackupJobStateRunning):
		return fmt.Sprintf("%s %s%% since %s", j.State, j.PercentDone, j.Created.In(r.loc).Format(timeLayout))
	default:
		return j.State + " " + j.Created.In(r.loc).Format(timeLayout)
	}
}
