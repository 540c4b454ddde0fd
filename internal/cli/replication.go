package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
)

const replicationUsage = `Usage: bulwark replication <command> [flags]

Commands:
  status   show each replication rule: backlog, latency, failures
  retry    queue the failed operations of a bucket again now
  resync   start a batch job that replicates existing or failed versions
  job      show one batch job
  jobs     list the batch jobs
  diff     compare a bucket with its destinations (exit code 1 when they differ)

They call the admin API of the region at -endpoint, signed like S3 calls.
Run "bulwark replication <command> -h" for a command's flags.
`

// replicationAPIPath is where the server serves the replication admin API.
const replicationAPIPath = "/_bulwark/v1/replication/"

// pollInterval is how often resync -wait reads its job's progress.
const pollInterval = 500 * time.Millisecond

// errDiffers makes diff exit with code 1, as diff(1) does.
var errDiffers = errors.New("the bucket and its destinations differ")

func (m *Main) replication(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, replicationUsage)
		return errUsage
	}
	cmds := map[string]func(context.Context, []string) error{
		"status": m.replicationStatus,
		"retry":  m.replicationRetry,
		"resync": m.replicationResync,
		"job":    m.replicationJob,
		"jobs":   m.replicationJobs,
		"diff":   m.replicationDiff,
	}
	switch cmd, ok := cmds[args[0]]; {
	case ok:
		return cmd(ctx, args[1:])
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(m.Stdout, replicationUsage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "bulwark replication: unknown command %q\n\n%s", args[0], replicationUsage)
		return errUsage
	}
}

func (m *Main) replicationStatus(ctx context.Context, args []string) error {
	fs := m.flags("replication status")
	af := m.addAdminFlags(fs)
	bucket := fs.String("bucket", "", "the bucket whose rules to show (default: every bucket of yours homed in the endpoint's region)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := af.client(m, replicationAPIPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *bucket != "" {
		q.Set("bucket", *bucket)
	}
	var st struct {
		Region string                   `json:"region"`
		Rules  []replication.RuleStatus `json:"rules"`
	}
	raw, err := c.call(ctx, http.MethodGet, "status", q, nil, &st)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	printStatus(m.Stdout, st.Region, st.Rules)
	return nil
}

func (m *Main) replicationRetry(ctx context.Context, args []string) error {
	fs := m.flags("replication retry")
	af := m.addAdminFlags(fs)
	bucket := fs.String("bucket", "", "the bucket whose failed operations to retry (required)")
	c, err := m.bucketClient(fs, af, args, bucket)
	if err != nil {
		return err
	}
	var out struct {
		Requeued int `json:"requeued"`
	}
	raw, err := c.call(ctx, http.MethodPost, "retry", url.Values{"bucket": {*bucket}}, nil, &out)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	fmt.Fprintf(m.Stdout, "requeued %d failed operation%s of bucket %s\n", out.Requeued, plural(out.Requeued), *bucket)
	return nil
}

// jobView is a job as the admin API shows it.
type jobView struct {
	replication.Job
	Region string `json:"region"`
}

func (m *Main) replicationResync(ctx context.Context, args []string) error {
	fs := m.flags("replication resync")
	af := m.addAdminFlags(fs)
	var req replication.ResyncRequest
	fs.StringVar(&req.Bucket, "bucket", "", "the source bucket (required)")
	fs.StringVar(&req.Status, "status", replication.ResyncNone,
		"which versions: NONE (never replicated: written before the rules), FAILED, or ALL (everything but replicas)")
	fs.StringVar(&req.Prefix, "prefix", "", "only keys with this prefix")
	fs.StringVar(&req.ReportBucket, "report-bucket", "", "write a CSV completion report into this bucket (of the source bucket's region)")
	fs.StringVar(&req.ReportPrefix, "report-prefix", "", "key prefix of the report")
	wait := fs.Bool("wait", false, "follow the job's progress until it ends")
	if err := parse(fs, args); err != nil {
		return err
	}
	if req.Bucket == "" {
		fmt.Fprintln(m.Stderr, "-bucket is required")
		return errUsage
	}
	c, err := af.client(m, replicationAPIPath)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	var j jobView
	raw, err := c.call(ctx, http.MethodPost, "jobs", nil, body, &j)
	if err != nil {
		return err
	}
	if !*wait {
		if *af.json {
			return m.writeRaw(raw)
		}
		fmt.Fprintf(m.Stdout, "job %s started in region %s\n", j.ID, j.Region)
		return nil
	}
	fmt.Fprintf(m.Stderr, "job %s started in region %s\n", j.ID, j.Region)
	raw, err = m.follow(ctx, c, &j)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	printOutcome(m.Stdout, &j)
	switch {
	case j.State == replication.JobFailed:
		return fmt.Errorf("job %s failed: %s", j.ID, j.Error)
	case j.Failed > 0:
		return fmt.Errorf("job %s: %d version%s failed to replicate", j.ID, j.Failed, plural(int(j.Failed)))
	}
	return nil
}

// follow polls a job, printing a progress line on stderr whenever it
// moves, until it ends; it returns the job's last JSON.
func (m *Main) follow(ctx context.Context, c *adminClient, j *jobView) ([]byte, error) {
	path, q := "jobs/"+url.PathEscape(j.ID), url.Values{"region": {j.Region}}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	last := ""
	for {
		raw, err := c.call(ctx, http.MethodGet, path, q, nil, j)
		if err != nil {
			return nil, err
		}
		if j.State == replication.JobCompleted || j.State == replication.JobFailed {
			return raw, nil
		}
		if line := progressLine(j); line != last {
			fmt.Fprintln(m.Stderr, line)
			last = line
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped following job %s, which goes on: %w", j.ID, ctx.Err())
		case <-t.C:
		}
	}
}

func progressLine(j *jobView) string {
	if j.State == replication.JobCounting {
		return "counting the versions to replicate..."
	}
	pct := 100.0
	if j.Total > 0 {
		pct = 100 * float64(j.Done) / float64(j.Total)
	}
	eta := "-"
	if j.ETA > 0 {
		eta = duration(time.Duration(j.ETA))
	}
	return fmt.Sprintf("%5.1f%%  %d/%d objects  %s/%s  %.1f objects/s  %s/s  ETA %s",
		pct, j.Done, j.Total, bytesize(j.DoneSize), bytesize(j.TotalSize), j.RateObjects, bytesize(int64(j.RateBytes)), eta)
}

func printOutcome(w io.Writer, j *jobView) {
	took := ""
	if !j.Started.IsZero() && !j.Finished.IsZero() {
		took = " in " + duration(j.Finished.Sub(j.Started))
	}
	fmt.Fprintf(w, "job %s %s%s: %d replicated, %d failed, %d skipped (%d objects, %s)\n",
		j.ID, j.State, took, j.Replicated, j.Failed, j.Skipped, j.Done, bytesize(j.DoneSize))
	if j.Error != "" {
		fmt.Fprintf(w, "error: %s\n", j.Error)
	}
	if j.ReportKey != "" {
		fmt.Fprintf(w, "report: s3://%s/%s\n", j.ReportBucket, j.ReportKey)
	}
}

func (m *Main) replicationJob(ctx context.Context, args []string) error {
	fs := m.flags("replication job")
	af := m.addAdminFlags(fs)
	jobRegion := fs.String("job-region", "", "the region running the job (default: the endpoint's)")
	ids, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		fmt.Fprintln(m.Stderr, "usage: bulwark replication job [flags] JOB-ID")
		return errUsage
	}
	c, err := af.client(m, replicationAPIPath)
	if err != nil {
		return err
	}
	var j jobView
	raw, err := c.call(ctx, http.MethodGet, "jobs/"+url.PathEscape(ids[0]), regionQuery(*jobRegion), nil, &j)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	printJob(m.Stdout, &j)
	return nil
}

func printJob(w io.Writer, j *jobView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("job", j.ID)
	row("region", j.Region)
	row("bucket", j.Bucket)
	sel := j.Status
	if j.Prefix != "" {
		sel += ", prefix " + j.Prefix
	}
	row("versions", sel)
	row("state", j.State)
	if j.Error != "" {
		row("error", j.Error)
	}
	row("progress", fmt.Sprintf("%d/%d objects, %s/%s", j.Done, j.Total, bytesize(j.DoneSize), bytesize(j.TotalSize)))
	if j.RateObjects > 0 {
		row("rate", fmt.Sprintf("%.1f objects/s, %s/s", j.RateObjects, bytesize(int64(j.RateBytes))))
	}
	if j.ETA > 0 {
		row("eta", duration(time.Duration(j.ETA)))
	}
	row("outcome", fmt.Sprintf("%d replicated, %d failed, %d skipped", j.Replicated, j.Failed, j.Skipped))
	row("created", j.Created.Local().Format(time.DateTime))
	if !j.Finished.IsZero() {
		row("finished", j.Finished.Local().Format(time.DateTime))
	}
	if j.ReportKey != "" {
		row("report", "s3://"+j.ReportBucket+"/"+j.ReportKey)
	}
	tw.Flush()
}

func (m *Main) replicationJobs(ctx context.Context, args []string) error {
	fs := m.flags("replication jobs")
	af := m.addAdminFlags(fs)
	jobRegion := fs.String("job-region", "", "the region whose jobs to list (default: the endpoint's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := af.client(m, replicationAPIPath)
	if err != nil {
		return err
	}
	var out struct {
		Region string    `json:"region"`
		Jobs   []jobView `json:"jobs"`
	}
	raw, err := c.call(ctx, http.MethodGet, "jobs", regionQuery(*jobRegion), nil, &out)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	if len(out.Jobs) == 0 {
		fmt.Fprintf(m.Stdout, "no replication jobs of yours in region %s\n", out.Region)
		return nil
	}
	fmt.Fprintf(m.Stdout, "region %s\n\n", out.Region)
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tBUCKET\tVERSIONS\tSTATE\tOBJECTS\tREPLICATED\tFAILED\tCREATED")
	for _, j := range out.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%s\n", j.ID, j.Bucket, j.Status, j.State,
			j.Done, j.Total, j.Replicated, j.Failed, j.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (m *Main) replicationDiff(ctx context.Context, args []string) error {
	fs := m.flags("replication diff")
	af := m.addAdminFlags(fs)
	bucket := fs.String("bucket", "", "the source bucket (required)")
	c, err := m.bucketClient(fs, af, args, bucket)
	if err != nil {
		return err
	}
	var rep replication.DiffReport
	raw, err := c.call(ctx, http.MethodGet, "diff", url.Values{"bucket": {*bucket}}, nil, &rep)
	if err != nil {
		return err
	}
	if *af.json {
		if err := m.writeRaw(raw); err != nil {
			return err
		}
	} else {
		printDiff(m.Stdout, &rep)
	}
	if n := len(rep.Differences); n > 0 {
		return fmt.Errorf("%w: %d difference%s", errDiffers, n, plural(n))
	}
	return nil
}

func printDiff(w io.Writer, rep *replication.DiffReport) {
	dests := strings.Join(rep.Destinations, ", ")
	if dests == "" {
		dests = "no destination (no enabled rule)"
	}
	if len(rep.Differences) == 0 {
		fmt.Fprintf(w, "no differences: %d version%s of %s compared with %s\n", rep.Compared, plural(rep.Compared), rep.Bucket, dests)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tDESTINATION\tKEY\tVERSION\tSOURCE STATUS\tDETAIL")
	kinds := map[string]int{}
	for _, d := range rep.Differences {
		kinds[d.Kind]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, d.Destination, d.Key, d.VersionID, orDash(d.SourceStatus), diffDetail(d))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d difference%s (%d missing, %d different, %d extra); %d version%s of %s compared with %s\n",
		len(rep.Differences), plural(len(rep.Differences)),
		kinds[replication.DiffMissing], kinds[replication.DiffDifferent], kinds[replication.DiffExtra],
		rep.Compared, plural(rep.Compared), rep.Bucket, dests)
}

// diffDetail says what a difference means, and how to repair it when
// Bulwark can.
func diffDetail(d replication.Difference) string {
	switch {
	case d.Detail != "" || d.Kind != replication.DiffMissing:
		return d.Detail
	case d.SourceStatus == "":
		return "written before the rule: resync sends it"
	case d.SourceStatus == objectstore.StatusPending:
		return "not replicated yet: see status"
	case d.SourceStatus == objectstore.StatusFailed:
		return "replication failed: see status; retry or resync -status FAILED"
	default:
		return "resync -status ALL sends it again"
	}
}

// printStatus writes one table row per rule and destination, then the
// failures of each, grouped by reason.
func printStatus(w io.Writer, region string, rules []replication.RuleStatus) {
	if len(rules) == 0 {
		fmt.Fprintf(w, "region %s: no replication rules\n", region)
		return
	}
	fmt.Fprintf(w, "region %s\n\n", region)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUCKET\tRULE\tDESTINATION\tPENDING\tOLDEST\tLATENCY P50/P99\tFAILED\tREACHABLE")
	for _, s := range rules {
		dest := s.Destination
		if s.DestinationRegion != "" {
			dest += " (" + s.DestinationRegion + ")"
		}
		latency := "-"
		if s.LatencySamples > 0 {
			latency = fmt.Sprintf("%s / %s (%d)", duration(time.Duration(s.LatencyP50)), duration(time.Duration(s.LatencyP99)), s.LatencySamples)
		}
		reach := "yes"
		if !s.Reachable {
			reach = "no"
			if s.Unreachable != "" {
				reach += ": " + s.Unreachable
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d ops / %s\t%s\t%s\t%d\t%s\n", s.Bucket, s.Rule, dest,
			s.PendingOps, bytesize(s.PendingBytes), duration(time.Duration(s.OldestPendingAge)), latency, s.FailedOps, reach)
	}
	tw.Flush()
	for _, s := range rules {
		if len(s.Failures) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nfailures of %s → %s (rule %s):\n", s.Bucket, s.Destination, s.Rule)
		for _, f := range s.Failures {
			fmt.Fprintf(w, "  %d × %s: %s\n", f.Count, f.Code, f.Reason)
			fmt.Fprintf(w, "      e.g. key %q version %s, last at %s\n", f.ExampleKey, f.ExampleVersion, f.Last.Local().Format(time.DateTime))
		}
	}
}

func regionQuery(region string) url.Values {
	if region == "" {
		return nil
	}
	return url.Values{"region": {region}}
}

// bytesize writes n bytes in binary units: "512 B", "1.5 KiB".
func bytesize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n)/1024, "KMGTPE"
	for i := 0; ; i++ {
		if v < 1024 || i == len(units)-1 {
			return fmt.Sprintf("%.1f %ciB", v, units[i])
		}
		v /= 1024
	}
}

// duration writes d to a precision a reader takes in at a glance; zero is
// "-".
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bucketClient parses the flags of a subcommand about one bucket, which
// -bucket must name, and returns the admin API client.
func (m *Main) bucketClient(fs *flag.FlagSet, af adminFlags, args []string, bucket *string) (*adminClient, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if *bucket == "" {
		fmt.Fprintln(m.Stderr, "-bucket is required")
		return nil, errUsage
	}
	return af.client(m, replicationAPIPath)
}
