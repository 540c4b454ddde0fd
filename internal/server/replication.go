package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/topology"
)

// replicationPath is where the replication admin API lives; `bulwark
// replication` is its client.
const replicationPath = adminPrefix + "v1/replication/"

// maxJobRequest caps the body of a job request; a real one is a few
// hundred bytes.
const maxJobRequest = 64 << 10

// replicationAPI serves the replication admin calls of one region.
//
// A call that names a bucket is answered by the bucket's home region, the
// one whose engine replicates it: a region that does not hold the bucket
// passes the call on there unchanged, as the router does for S3 calls, and
// the home region authenticates and authorizes it again.
//
// Jobs belong to the region whose engine runs them, and their IDs are
// that region's alone: the calls that name a job are answered from this
// region's jobs, or from those of the region named by the "region" query
// parameter (the Job JSON says which region runs the job, and the CLI
// sends that back), to which the call is passed on.
type replicationAPI struct {
	r   *Region
	fwd *router
}

// The replication admin API's calls are authorized with the actions AWS
// uses for their counterparts: reading a bucket's replication state is
// s3:GetReplicationConfiguration, queueing its failed operations again
// s3:PutReplicationConfiguration (it changes what replication does, as a
// new configuration would), comparing it with its destinations (which
// lists keys and version IDs) s3:ListBucketVersions, and batch jobs are
// S3 Batch Operations' s3:CreateJob, s3:ListJobs and s3:DescribeJob.
const (
	actionReplicationStatus = "s3:GetReplicationConfiguration"
	actionReplicationRetry  = "s3:PutReplicationConfiguration"
	actionReplicationDiff   = "s3:ListBucketVersions"
	actionCreateJob         = "s3:CreateJob"
	actionListJobs          = "s3:ListJobs"
	actionDescribeJob       = "s3:DescribeJob"
)

// replicationRoutes are the replication admin calls.
func (r *Region) replicationRoutes() []adminRoute {
	a := &replicationAPI{r: r, fwd: r.router().(*router)}
	return []adminRoute{
		{"GET " + replicationPath + "status", checked, []string{actionReplicationStatus}, a.status},
		{"POST " + replicationPath + "retry", checked, []string{actionReplicationRetry}, a.retry},
		{"POST " + replicationPath + "jobs", checked, []string{actionCreateJob}, a.startJob},
		{"GET " + replicationPath + "jobs", checked, []string{actionListJobs}, a.jobs},
		{"GET " + replicationPath + "jobs/{id}", checked, []string{actionDescribeJob}, a.job},
		{"GET " + replicationPath + "jobs/{id}/report", checked, []string{actionDescribeJob}, a.report},
		{"GET " + replicationPath + "diff", checked, []string{actionReplicationDiff}, a.diff},
	}
}

// statusResponse answers GET status.
type statusResponse struct {
	Region string                   `json:"region"`
	Rules  []replication.RuleStatus `json:"rules"`
}

// jobView is a job as the API shows it: with the region that runs it,
// which is where calls about it must go.
type jobView struct {
	*replication.Job
	Region string `json:"region"`
}

type jobsResponse struct {
	Region string    `json:"region"`
	Jobs   []jobView `json:"jobs"`
}

type reportResponse struct {
	ID     string                  `json:"id"`
	Region string                  `json:"region"`
	Rows   []replication.ReportRow `json:"rows"`
}

// status reports the rules of one bucket, or of every bucket of this
// region the caller owns.
func (a *replicationAPI) status(w http.ResponseWriter, req *http.Request) {
	bucket := req.URL.Query().Get("bucket")
	if bucket != "" && !a.atHome(w, req, bucket, actionReplicationStatus) {
		return
	}
	var rules []replication.RuleStatus
	var err error
	if bucket != "" {
		rules, err = a.r.Replication.Status(req.Context(), bucket)
	} else {
		rules, err = a.statusOfAll(req, actionReplicationStatus)
	}
	if err != nil {
		a.fail(w, req, "replication status", err)
		return
	}
	if rules == nil {
		rules = []replication.RuleStatus{}
	}
	writeJSON(w, http.StatusOK, statusResponse{Region: a.r.cfg.Region, Rules: rules})
}

// statusOfAll reports the rules of every bucket of this region that the
// caller's account owns and the caller may do action on: those
// configured, and those with work left over from rules since removed. The
// engine's own "all buckets" has only the second kind.
func (a *replicationAPI) statusOfAll(req *http.Request, action string) ([]replication.RuleStatus, error) {
	ctx := req.Context()
	decided(ctx) // what is shown is filtered by authorization, bucket by bucket
	worked, err := a.r.Replication.Status(ctx, "")
	if err != nil {
		return nil, err
	}
	buckets, err := a.r.Store.ListBuckets(ctx, callerOf(ctx).AccountID)
	if err != nil {
		return nil, err
	}
	var rules []replication.RuleStatus
	configured := map[string]bool{}
	permitted := a.permitted(req, action)
	for _, b := range buckets {
		if len(b.Replication) == 0 || !permitted(b.Name) {
			continue
		}
		configured[b.Name] = true
		more, err := a.r.Replication.Status(ctx, b.Name)
		switch {
		case errors.Is(err, objectstore.ErrNoSuchBucket):
			// Deleted meanwhile.
		case err != nil:
			return nil, err
		default:
			rules = append(rules, more...)
		}
	}
	for _, s := range worked {
		if !configured[s.Bucket] && permitted(s.Bucket) {
			rules = append(rules, s)
		}
	}
	slices.SortFunc(rules, func(x, y replication.RuleStatus) int {
		return cmp.Or(strings.Compare(x.Bucket, y.Bucket), strings.Compare(x.Rule, y.Rule), strings.Compare(x.Destination, y.Destination))
	})
	return rules, nil
}

// retry queues the failed operations of one bucket, or of every bucket of
// this region the caller owns, again now.
func (a *replicationAPI) retry(w http.ResponseWriter, req *http.Request) {
	bucket := req.URL.Query().Get("bucket")
	buckets := []string{bucket}
	if bucket != "" {
		if !a.atHome(w, req, bucket, actionReplicationRetry) {
			return
		}
	} else {
		// The engine's "all buckets" is every account's: only the
		// caller's that have failures, and that the caller may act on,
		// are retried.
		rules, err := a.statusOfAll(req, actionReplicationRetry)
		if err != nil {
			a.fail(w, req, "retry failed replication", err)
			return
		}
		buckets = nil
		for _, s := range rules {
			if s.FailedOps > 0 && !slices.Contains(buckets, s.Bucket) {
				buckets = append(buckets, s.Bucket)
			}
		}
	}
	total := 0
	for _, b := range buckets {
		n, err := a.r.Replication.RetryFailed(req.Context(), b)
		if err != nil {
			a.fail(w, req, "retry failed replication", err)
			return
		}
		total += n
	}
	writeJSON(w, http.StatusOK, map[string]int{"requeued": total})
}

// startJob starts a batch replication job in the bucket's home region.
func (a *replicationAPI) startJob(w http.ResponseWriter, req *http.Request) {
	// s3:CreateJob is an account-level action: decided before the body
	// is read, so that whoever may not create jobs learns nothing of how
	// a request must look.
	if err := a.r.authorize(req, actionCreateJob, "*", nil); err != nil {
		writeDenied(w, err)
		return
	}
	body, ok := readBody(w, req, maxJobRequest, "job request")
	if !ok {
		return
	}
	var jr replication.ResyncRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("malformed job request: %v", err))
		return
	}
	if jr.Bucket == "" {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", "the job request names no bucket")
		return
	}
	replayBody(req, body) // for the home region, should the call go there
	if !a.atHome(w, req, jr.Bucket, actionCreateJob) {
		return
	}
	if jr.ReportBucket != "" {
		// The report is written with the engine's rights: only into a
		// bucket of the caller's. A bucket that is not here is refused
		// by the engine.
		if b, err := a.r.Store.Bucket(req.Context(), jr.ReportBucket); err == nil && b.Owner != callerOf(req.Context()).AccountID {
			writeJSONError(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("report bucket %s is not yours", jr.ReportBucket))
			return
		}
	}
	j, err := a.r.Replication.StartResync(req.Context(), jr)
	if err == nil {
		// The job StartResync returns is the one its goroutine is
		// updating; the stored copy is safe to read.
		j, err = a.r.Replication.Job(req.Context(), j.ID)
	}
	if err != nil {
		a.fail(w, req, "start replication job", err)
		return
	}
	writeJSON(w, http.StatusCreated, a.view(j))
}

// jobs lists the jobs this region runs for the caller's buckets.
func (a *replicationAPI) jobs(w http.ResponseWriter, req *http.Request) {
	if a.elsewhere(w, req) {
		return
	}
	if err := a.r.authorize(req, actionListJobs, "*", nil); err != nil {
		writeDenied(w, err)
		return
	}
	jobs, err := a.r.Replication.Jobs(req.Context())
	if err != nil {
		a.fail(w, req, "list replication jobs", err)
		return
	}
	owns := a.ownership(req.Context())
	out := jobsResponse{Region: a.r.cfg.Region, Jobs: []jobView{}}
	for _, j := range jobs {
		if owns(j.Bucket) {
			out.Jobs = append(out.Jobs, a.view(j))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// job shows one job and its progress.
func (a *replicationAPI) job(w http.ResponseWriter, req *http.Request) {
	if a.elsewhere(w, req) {
		return
	}
	j, ok := a.ownJob(w, req)
	if ok {
		writeJSON(w, http.StatusOK, a.view(j))
	}
}

// report returns a job's report rows, as many as it has so far.
func (a *replicationAPI) report(w http.ResponseWriter, req *http.Request) {
	if a.elsewhere(w, req) {
		return
	}
	j, ok := a.ownJob(w, req)
	if !ok {
		return
	}
	rows, err := a.r.Replication.Report(req.Context(), j.ID)
	if err != nil {
		a.fail(w, req, "read job report", err)
		return
	}
	if rows == nil {
		rows = []replication.ReportRow{}
	}
	writeJSON(w, http.StatusOK, reportResponse{ID: j.ID, Region: a.r.cfg.Region, Rows: rows})
}

// diff compares a bucket with its destinations.
func (a *replicationAPI) diff(w http.ResponseWriter, req *http.Request) {
	bucket := req.URL.Query().Get("bucket")
	if bucket == "" {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", "name the bucket to compare: ?bucket=")
		return
	}
	if !a.atHome(w, req, bucket, actionReplicationDiff) {
		return
	}
	rep, err := a.r.Replication.Diff(req.Context(), bucket)
	if err != nil {
		a.fail(w, req, "diff bucket "+bucket, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// atHome reports whether req, which names bucket, is to be answered here:
// bucket is homed in this region and the caller may do action on it (for
// s3:CreateJob, an account-level action, the caller's account must also
// own the bucket: jobs are the account's). Otherwise it has answered req:
// passed it on to the bucket's home region, which authorizes it, or
// refused it. A request already passed on by another region is never
// passed on again.
func (a *replicationAPI) atHome(w http.ResponseWriter, req *http.Request, bucket, action string) bool {
	ctx := req.Context()
	b, err := a.r.Store.Bucket(ctx, bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) && req.Header.Get(forwardedHeader) == "" {
		home, lerr := a.r.LocateBucket(ctx, bucket)
		switch {
		case lerr == nil && home != a.r.cfg.Region:
			a.forward(w, req, bucket, home, fmt.Sprintf("region %s, home of bucket %s,", home, bucket))
			return false
		case lerr == nil:
			b, err = a.r.Store.Bucket(ctx, bucket) // created here meanwhile
		case !errors.Is(lerr, objectstore.ErrNoSuchBucket):
			err = lerr
		}
	}
	switch {
	case errors.Is(err, objectstore.ErrNoSuchBucket):
		writeJSONError(w, http.StatusNotFound, "NoSuchBucket", fmt.Sprintf("bucket %s does not exist", bucket))
		return false
	case err != nil:
		a.fail(w, req, "look up bucket "+bucket, err)
		return false
	}
	if action == actionCreateJob {
		if err := a.r.authorize(req, action, "*", nil); err != nil {
			writeDenied(w, err)
			return false
		}
		if b.Owner != callerOf(ctx).AccountID {
			writeJSONError(w, http.StatusForbidden, "AccessDenied", fmt.Sprintf("bucket %s is not your account's", bucket))
			return false
		}
		return true
	}
	if err := a.r.authorize(req, action, "arn:aws:s3:::"+bucket, b); err != nil {
		writeDenied(w, err)
		return false
	}
	return true
}

// elsewhere passes a job call on to the region its "region" query
// parameter names, when that is not this one, and reports whether it did
// (or refused the call).
func (a *replicationAPI) elsewhere(w http.ResponseWriter, req *http.Request) bool {
	region := req.URL.Query().Get("region")
	if region == "" || region == a.r.cfg.Region || req.Header.Get(forwardedHeader) != "" {
		return false
	}
	if !slices.Contains(a.r.cfg.Topology.Names(), region) {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("region %s is not part of the deployment", region))
		return true
	}
	a.forward(w, req, "", region, "region "+region)
	return true
}

// forward passes req, about bucket ("" for none), on to region
// unchanged, its signature and body with it. who names the region in the
// error a client sees when it does not answer.
func (a *replicationAPI) forward(w http.ResponseWriter, req *http.Request, bucket, region, who string) {
	decided(req.Context()) // the region it goes to authorizes it
	_, err := a.fwd.forward(w, req, bucket, region)
	switch {
	case err == nil:
	case errors.Is(err, topology.ErrRegionUnreachable):
		writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable",
			fmt.Sprintf("%s did not answer; try again later", who))
	default:
		a.fail(w, req, "forward to region "+region, err)
	}
}

// ownJob reads the job req names, checks the caller's account owns its
// bucket and that the caller may s3:DescribeJob it. A job of another
// account is as unknown as one that does not exist.
func (a *replicationAPI) ownJob(w http.ResponseWriter, req *http.Request) (*replication.Job, bool) {
	ctx := req.Context()
	id := req.PathValue("id")
	j, err := a.r.Replication.Job(ctx, id)
	if err == nil && !a.ownership(ctx)(j.Bucket) {
		err = fmt.Errorf("%w: %s", replication.ErrNoSuchJob, id)
	}
	if err != nil {
		a.fail(w, req, "read replication job", err)
		return nil, false
	}
	arn := fmt.Sprintf("arn:aws:s3:%s:%s:job/%s", a.r.cfg.Region, callerOf(ctx).AccountID, j.ID)
	if err := a.r.authorize(req, actionDescribeJob, arn, nil); err != nil {
		writeDenied(w, err)
		return nil, false
	}
	return j, true
}

// permitted returns a test of whether the caller may do action on a
// bucket of this region its account owns, which looks each bucket up
// once. A bucket that is gone is nobody's.
func (a *replicationAPI) permitted(req *http.Request, action string) func(bucket string) bool {
	caller := callerOf(req.Context()).AccountID
	allowed := map[string]bool{}
	return func(bucket string) bool {
		v, ok := allowed[bucket]
		if !ok {
			b, err := a.r.Store.Bucket(req.Context(), bucket)
			v = err == nil && b.Owner == caller && a.r.authorize(req, action, "arn:aws:s3:::"+bucket, b) == nil
			allowed[bucket] = v
		}
		return v
	}
}

// ownership returns a test of whether the caller owns a bucket of this
// region, which looks each bucket up once. A bucket that is gone is
// nobody's.
func (a *replicationAPI) ownership(ctx context.Context) func(bucket string) bool {
	caller := callerOf(ctx).AccountID
	owns := map[string]bool{}
	return func(bucket string) bool {
		v, ok := owns[bucket]
		if !ok {
			b, err := a.r.Store.Bucket(ctx, bucket)
			v = err == nil && b.Owner == caller
			owns[bucket] = v
		}
		return v
	}
}

func (a *replicationAPI) view(j *replication.Job) jobView {
	return jobView{Job: j, Region: a.r.cfg.Region}
}

// fail answers an error of the engine or the store: the kinds a client can
// act on with their own status and message; anything else as a 500 whose
// cause is logged, not shown.
func (a *replicationAPI) fail(w http.ResponseWriter, req *http.Request, what string, err error) {
	switch {
	case errors.Is(err, objectstore.ErrNoSuchBucket):
		writeJSONError(w, http.StatusNotFound, "NoSuchBucket", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, replication.ErrNoSuchJob):
		writeJSONError(w, http.StatusNotFound, "NoSuchJob", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, replication.ErrInvalidJob), errors.Is(err, objectstore.ErrInvalidBucketName):
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, topology.ErrRegionUnreachable):
		writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable", fmt.Sprintf("%s: %v", what, err))
	case req.Context().Err() != nil:
		// The client is gone; nobody reads the answer.
	default:
		a.r.log.Error("replication admin API", "op", what, "path", req.URL.Path, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError",
			fmt.Sprintf("%s: internal error in region %s (logged there)", what, a.r.cfg.Region))
	}
}
