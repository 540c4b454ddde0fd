package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// adminActions is what a user needs for every admin API call: the AWS
// actions of their counterparts and Bulwark's own.
const adminActions = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[
  "s3:GetReplicationConfiguration","s3:PutReplicationConfiguration","s3:ListBucketVersions",
  "s3:CreateJob","s3:ListJobs","s3:DescribeJob",
  "bulwark:GetMetrics","bulwark:ListAccounts","bulwark:CreateAccount","bulwark:StartScrub","bulwark:GetScrubStatus",
  "bulwark:RegisterResource","bulwark:ListResources","bulwark:DescribeResource","bulwark:DeregisterResource",
  "bulwark:GetProtectionAudit"],"Resource":"*"}]}`

// TestAdminAuthorizationMatrix sends every admin and peer API call as
// every kind of principal and checks each answer: the admin API is
// authorized with IAM as the S3 API is, the peer API lets in only the
// deployment's regions, and nobody gets in by default.
func TestAdminAuthorizationMatrix(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	st := r.IAM
	a, b := servertest.AccountID, servertest.OtherAccountID
	rootA := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}
	principals := map[string]*creds{
		"root":      rootA,
		"alice":     userWithKey(t, st, a, "alice", adminActions),
		"bob":       userWithKey(t, st, a, "bob", ""), // no policy at all
		"reader":    roleSession(t, st, a, "reader", readOnly),
		"operator":  roleSession(t, st, a, "operator", adminActions),
		"rootB":     {ak: servertest.OtherAccessKey, sk: servertest.OtherSecretKey},
		"carol":     userWithKey(t, st, b, "carol", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","bulwark:*"],"Resource":"*"}]}`),
		"anonymous": nil,
	}
	past := st.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	_, err := past.CreateRole(bg, &iam.Role{Account: a, Name: "old", Trust: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + a + `"},"Action":"sts:AssumeRole"}]}`})
	mustDo(t, err)
	mustDo(t, st.PutInlinePolicy(bg, iam.EntityRole, a, "old", "p", adminActions))
	ss, err := past.AssumeRole(bg, &iam.Principal{AccountID: a, ARN: iam.RootARN(a)}, "arn:aws:iam::"+a+":role/old", "gone", 0)
	mustDo(t, err)
	principals["expired"] = &creds{ak: ss.ID, sk: ss.Secret, token: ss.Token}

	c := clientFor(r, rootA)
	versionedBucket(t, c, "a-bucket", "us-west-2")
	versionedBucket(t, c, "a-dest", "us-west-2")
	putObject(t, c, "a-bucket", "secret-key-name", "x")
	replicateAll(t, c, "a-bucket", "a-dest")
	rootAdmin := newAdmin(t, r, rootA.ak, rootA.sk)
	var job apiJob
	rootAdmin.ok(http.MethodPost, "jobs", []byte(`{"bucket":"a-bucket"}`), &job)
	r.Resources.SetValidator(backup.TypeEFS, dirValidator{})
	res := registerDir(t, r, rootA, "a-dir", t.TempDir(), nil)
	resPath := "v1/resources/" + url.PathEscape(res.ResourceArn)
	missingRes := "v1/resources/" + url.PathEscape(backup.RDSARN("us-west-2", a, "nosuch"))

	type call struct {
		method, path, body string
		// who may: the principals that pass authorization.
		who []string
		// hidden: principals for whom the resource does not exist (a job
		// of another account): 404, as if there were no such job.
		hidden []string
	}
	admins := []string{"root", "alice", "operator"}
	peers := []string{"root"}
	calls := []call{
		{"GET", "v1/replication/status?bucket=a-bucket", "", admins, nil},
		{"POST", "v1/replication/retry?bucket=a-bucket", "", admins, nil},
		{"GET", "v1/replication/diff?bucket=a-bucket", "", admins, nil},
		{"POST", "v1/replication/jobs", `{"bucket":"a-bucket"}`, admins, nil},
		{"GET", "v1/replication/jobs", "", append(admins, "carol", "rootB"), nil}, // their own account's: none
		{"GET", "v1/replication/jobs/" + job.ID, "", admins, []string{"carol", "rootB"}},
		{"GET", "v1/replication/jobs/" + job.ID + "/report", "", admins, []string{"carol", "rootB"}},
		{"GET", "v1/accounts", "", admins, nil},
		{"POST", "v1/accounts", `{"name":""}`, admins, nil}, // invalid name: 400 once let in
		{"GET", "v1/metrics", "", admins, nil},
		{"GET", "v1/scrub", "", admins, nil},
		{"POST", "v1/scrub", `{"bucket":"no-such-bucket"}`, admins, nil}, // 404 once let in
		{"GET", "v1/scrub/copy?bucket=a-bucket&key=secret-key-name&versionId=x&etag=x&part=0", "", peers, nil},
		{"GET", "v1/buckets/a-bucket", "", peers, nil},
		{"GET", "v1/iam/snapshot", "", peers, nil},
		// An account registers its own resources and sees only those.
		{"POST", "v1/resources", `{"ResourceType":"EFS","Name":""}`, append(admins, "carol", "rootB"), nil}, // 400 once let in
		{"GET", "v1/resources", "", append(admins, "carol", "rootB"), nil},
		{"GET", resPath, "", admins, []string{"carol", "rootB"}},
		{"DELETE", missingRes, "", admins, []string{"carol", "rootB"}}, // 404 once let in
		{"POST", "v1/backup/copies/", `{}`, peers, nil},
		{"POST", "v1/backup/copies/nosuch/missing", `[]`, peers, nil},
		{"PUT", "v1/backup/copies/nosuch/chunks", ``, peers, nil},
		{"POST", "v1/backup/copies/nosuch/entries", `[]`, peers, nil},
		{"POST", "v1/backup/copies/nosuch/commit", ``, peers, nil},
		{"DELETE", "v1/backup/copies/nosuch", ``, peers, nil},
		// An account audits its own resources; another account's, or
		// every account's, is the admin account's.
		{"GET", "v1/audit", "", append(admins, "carol", "rootB"), nil},
		{"GET", "v1/audit?account=" + a, "", admins, nil},
		{"GET", "v1/audit?account=" + b, "", append(admins, "carol", "rootB"), nil},
		{"GET", "v1/audit/facts", "", peers, nil},
		// The cost is the audit's facts, priced: the same rules.
		{"GET", "v1/audit/cost", "", append(admins, "carol", "rootB"), nil},
		{"POST", "v1/audit/cost?account=" + a, `{"backupWarmPerGBMonth": 0.004}`, admins, nil},
		{"POST", "v1/audit/cost?account=" + b, `{"bogus": 1}`, append(admins, "carol", "rootB"), nil}, // 400 once let in
	}
	covered := map[string]bool{}
	for _, cl := range calls {
		covered[cl.method+" "+routeOf(cl.path)] = true
	}
	for _, route := range server.AdminRoutePatterns(r.Region) {
		if !covered[route] {
			t.Errorf("admin route %s is not in the matrix", route)
		}
	}
	for who, cr := range principals {
		ad := newAdmin(t, r, "", "")
		ad.base = "/_bulwark/"
		if cr != nil {
			ad.ak, ad.sk, ad.token = cr.ak, cr.sk, cr.token
		}
		for _, cl := range calls {
			t.Run(fmt.Sprintf("%s/%s %s", who, cl.method, cl.path), func(t *testing.T) {
				ad.t = t
				status, raw := ad.call(cl.method, cl.path, []byte(cl.body))
				allowed := status != http.StatusForbidden && status != http.StatusUnauthorized
				if slices.Contains(cl.hidden, who) {
					if status != http.StatusNotFound {
						t.Errorf("answer %d %s, want 404", status, raw)
					}
				} else if want := slices.Contains(cl.who, who); allowed != want {
					t.Errorf("allowed %v, want %v: %d %s", allowed, want, status, raw)
				}
				if allowed && cl.method == "GET" && cl.path == "v1/replication/jobs" && strings.Contains(string(raw), job.ID) != slices.Contains(admins, who) {
					t.Errorf("job list: %s", raw)
				}
				if allowed && cl.method == "GET" && cl.path == "v1/resources" && strings.Contains(string(raw), res.ResourceArn) != slices.Contains(admins, who) {
					t.Errorf("resource list: %s", raw)
				}
				if allowed && cl.method == "GET" && (cl.path == "v1/audit" || cl.path == "v1/audit/cost") &&
					strings.Contains(string(raw), "arn:aws:s3:::a-bucket") != slices.Contains(admins, who) {
					t.Errorf("%s: %s", cl.path, raw)
				}
				if !allowed && strings.Contains(string(raw), "secret-key-name") {
					t.Errorf("a refusal shows a key name: %s", raw)
				}
				if status >= 500 {
					t.Errorf("answer %d %s", status, raw)
				}
			})
		}
	}

	// A listing of every bucket's state shows only what the caller may
	// see: nothing at all for a user without policies.
	for who, want := range map[string]int{"root": 1, "alice": 1, "bob": 0, "carol": 0} {
		cr := principals[who]
		var st struct {
			Rules []struct{ Bucket string } `json:"rules"`
		}
		newAdmin(t, r, cr.ak, cr.sk).ok(http.MethodGet, "status", nil, &st)
		if len(st.Rules) != want {
			t.Errorf("%s sees %d rules in the status of all buckets, want %d: %+v", who, len(st.Rules), want, st.Rules)
		}
	}
	var rq map[string]int
	newAdmin(t, r, principals["bob"].ak, principals["bob"].sk).ok(http.MethodPost, "retry", nil, &rq)
	if rq["requeued"] != 0 {
		t.Errorf("bob's retry of all buckets requeued %d", rq["requeued"])
	}
}

// routeOf turns a call's path into the pattern of its route.
func routeOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	p := "/_bulwark/" + path
	switch {
	case strings.HasPrefix(path, "v1/replication/jobs/") && strings.HasSuffix(path, "/report"):
		return "/_bulwark/v1/replication/jobs/{id}/report"
	case strings.HasPrefix(path, "v1/replication/jobs/"):
		return "/_bulwark/v1/replication/jobs/{id}"
	case strings.HasPrefix(path, "v1/resources/"):
		return "/_bulwark/v1/resources/{arn...}"
	case strings.HasPrefix(path, "v1/buckets/"):
		return "/_bulwark/v1/buckets/{name}"
	case path == "v1/backup/copies/":
		return "/_bulwark/v1/backup/copies/{$}"
	case strings.HasPrefix(path, "v1/backup/copies/"):
		rest := strings.TrimPrefix(path, "v1/backup/copies/")
		if _, sub, ok := strings.Cut(rest, "/"); ok {
			return "/_bulwark/v1/backup/copies/{id}/" + sub
		}
		return "/_bulwark/v1/backup/copies/{id}"
	}
	return p
}

// TestAdminForwardedCallsAreAuthorizedAtHome sends admin calls about a
// bucket to the region that does not hold it: the bucket's home region
// decides, and a user without policies is refused there too.
func TestAdminForwardedCallsAreAuthorizedAtHome(t *testing.T) {
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	root := clientFor(west, &creds{ak: servertest.AccessKey, sk: servertest.SecretKey})
	versionedBucket(t, root, "east-src", "us-east-1")
	versionedBucket(t, root, "east-dst", "us-east-1")
	replicateAll(t, root, "east-src", "east-dst")
	bob := userWithKey(t, west.IAM, servertest.AccountID, "bob", "")
	alice := userWithKey(t, west.IAM, servertest.AccountID, "alice", adminActions)
	for _, path := range []string{"status?bucket=east-src", "diff?bucket=east-src"} {
		newAdmin(t, west, bob.ak, bob.sk).fails(http.MethodGet, path, nil, http.StatusForbidden, "AccessDenied")
		var out json.RawMessage
		newAdmin(t, west, alice.ak, alice.sk).ok(http.MethodGet, path, nil, &out)
	}
	// A forged "already forwarded" header does not skip the check.
	forged := newAdmin(t, east, bob.ak, bob.sk)
	forged.forwardedHeader = "us-west-2"
	forged.fails(http.MethodGet, "diff?bucket=east-src", nil, http.StatusForbidden, "AccessDenied")
}

// TestMetricsNeedAToken checks the ways to the metrics: the bearer token,
// a signed call by the admin account, and nothing else.
func TestMetricsNeedAToken(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	get := func(auth string) int {
		req, _ := http.NewRequest(http.MethodGet, r.URL()+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := r.HTTPClient(t).Do(req)
		mustDo(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for auth, want := range map[string]int{
		"":                                  http.StatusUnauthorized,
		"Bearer wrong":                      http.StatusUnauthorized,
		"Bearer ":                           http.StatusUnauthorized,
		"Bearer " + servertest.MetricsToken: http.StatusOK,
		"Bearer " + servertest.MetricsToken + "x": http.StatusUnauthorized,
		// Not a bearer token: S3's, for a bucket named "metrics", and
		// refused as a malformed signature.
		"Basic " + servertest.MetricsToken:  http.StatusBadRequest,
		"bearer " + servertest.MetricsToken: http.StatusBadRequest,
	} {
		if got := get(auth); got != want {
			t.Errorf("GET /metrics with %q: %d, want %d", auth, got, want)
		}
	}
	pub := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) { c.MetricsPublic = true; c.MetricsToken = "" }})
	resp, err := pub.HTTPClient(t).Get(pub.URL() + "/metrics")
	mustDo(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("public metrics: %d", resp.StatusCode)
	}
}
