package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
)

// The protection audit (package audit) is answered by whichever region is
// asked: it reads its own facts and asks every other region for theirs,
// in parallel, through the peer call adminapi.AuditFactsPath. A region
// that does not answer within auditPeerTimeout is named in the answer,
// and what depends on it is UNKNOWN, never PROTECTED.
//
// The audit is authorized as bulwark:GetProtectionAudit: on "*" for the
// caller's own account; the audit of another account, or of every
// account (the admin's default), is the deployment's admin's only.
const actionGetProtectionAudit = "bulwark:GetProtectionAudit"

// auditPeerTimeout bounds how long the audit waits for a region's facts.
// A region that is down fails faster (topology's dial timeout); this
// bounds one that hangs.
var auditPeerTimeout = 20 * time.Second

// maxAuditFacts caps a region's facts answer.
const maxAuditFacts = 256 << 20

func (r *Region) auditRoutes() []adminRoute {
	return []adminRoute{
		{"GET " + adminapi.AuditPath, checked, []string{actionGetProtectionAudit}, r.serveAudit},
		{"GET " + adminapi.AuditFactsPath, peersOnly, nil, r.serveAuditFacts},
		{"GET " + adminapi.CostPath, checked, []string{actionGetProtectionAudit}, r.serveCost},
		{"POST " + adminapi.CostPath, checked, []string{actionGetProtectionAudit}, r.serveCost},
	}
}

// auditNow is the audit's clock: the backup service's, by which recovery
// points and restore jobs are dated (the wall clock outside tests).
func (r *Region) auditNow() time.Time {
	if r.cfg.BackupClock != nil {
		return r.cfg.BackupClock()
	}
	return time.Now()
}

// auditAccount authorizes an audit request and returns the account it
// covers: the ?account= one, else the caller's, or every account ("")
// for the admin. ok is false when the answer has been written.
func (r *Region) auditAccount(w http.ResponseWriter, req *http.Request, what string) (account string, ok bool) {
	caller := callerOf(req.Context())
	account = req.URL.Query().Get("account")
	if account == "" && !r.isAdminAccount(caller) {
		account = caller.AccountID
	}
	if account != caller.AccountID {
		of := " of another account"
		if account == "" {
			of = " of every account"
		}
		return account, r.adminOnly(w, req, actionGetProtectionAudit, what+of)
	}
	if err := r.authorize(req, actionGetProtectionAudit, "*", nil); err != nil {
		writeDenied(w, err)
		return account, false
	}
	return account, true
}

// serveAudit answers the protection audit.
func (r *Region) serveAudit(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	account, ok := r.auditAccount(w, req, "the protection audit")
	if !ok {
		return
	}
	var require []audit.Threat
	if v := q.Get("require"); v != "" {
		var err error
		if require, err = audit.ParseThreats(v); err != nil {
			writeJSONError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
			return
		}
	}
	policy, err := auditPolicy(r.cfg)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	facts, unreached := r.gatherAudit(req.Context())
	rep, err := audit.Assess(audit.Input{Now: r.auditNow(), Facts: facts, Unreached: unreached, Policy: policy,
		Require: require, Account: account, Resource: q.Get("resource")})
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidParameterValueException", err.Error())
		return
	}
	if account != "" {
		rep.Facts = audit.ForAccount(rep.Facts, account)
	}
	writeJSON(w, http.StatusOK, rep)
}

// isAdminAccount says whether p is a principal of the deployment's admin
// account, whose audit covers every account by default.
func (r *Region) isAdminAccount(p *iam.Principal) bool {
	return p != nil && r.admin != "" && p.AccountID == r.admin
}

// auditPolicy is the deployment's: the configuration's, the topology
// file's requirement, the defaults.
func auditPolicy(cfg Config) (audit.Policy, error) {
	p := cfg.Audit
	if req := cfg.Topology.AuditRequire(); p.Require == nil && req != nil {
		ts, err := audit.ParseThreats(strings.Join(req, ","))
		if err != nil {
			return p, fmt.Errorf("the topology file's audit.require: %w", err)
		}
		p.Require = ts
	}
	return p.WithDefaults(), nil
}

// serveAuditFacts answers a peer's request for this region's facts.
func (r *Region) serveAuditFacts(w http.ResponseWriter, req *http.Request) {
	f, err := r.localFacts(req.Context())
	if err != nil {
		r.log.Error("audit: gather local facts", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError", "gather the region's facts")
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// localFacts reads what this region knows, of every account.
func (r *Region) localFacts(ctx context.Context) (*audit.Facts, error) {
	accounts, err := r.IAM.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit facts: list accounts: %w", err)
	}
	ids, err := r.Jobs.PostureAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit facts: %w", err)
	}
	for _, a := range accounts {
		if !slices.Contains(ids, a.ID) {
			ids = append(ids, a.ID)
		}
	}
	slices.Sort(ids)
	var postures []*backup.Posture
	for _, id := range ids {
		p, err := r.Jobs.Posture(ctx, id)
		if err != nil {
			return nil, err
		}
		postures = append(postures, p)
	}
	all, err := r.Store.AllBuckets(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit facts: list buckets: %w", err)
	}
	buckets := map[string]audit.Bucket{}
	for _, b := range all {
		if b.Region != r.cfg.Region {
			continue
		}
		ab := audit.Bucket{Name: b.Name, Versioning: b.Versioning}
		if ab.Rules, err = r.Replication.Posture(ctx, b.Name); err != nil {
			return nil, err
		}
		if ab.Stored, err = r.Replication.Stored(ctx, b.Name); err != nil {
			return nil, err
		}
		buckets[b.Name] = ab
	}
	return audit.Collect(r.cfg.Region, r.auditNow(), postures, buckets), nil
}

// gatherAudit reads this region's facts and every other region's, in
// parallel; the regions that do not answer are returned with why.
func (r *Region) gatherAudit(ctx context.Context) ([]*audit.Facts, []audit.Unreached) {
	p := r.peers()
	others := p.others()
	facts := make([]*audit.Facts, len(others)+1)
	errs := make([]error, len(others)+1)
	var wg sync.WaitGroup
	for i, peer := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, auditPeerTimeout)
			defer cancel()
			facts[i+1], errs[i+1] = r.peerFacts(cctx, peer)
		}()
	}
	facts[0], errs[0] = r.localFacts(ctx)
	wg.Wait()
	var got []*audit.Facts
	var down []audit.Unreached
	names := append([]string{r.cfg.Region}, others...)
	for i := range names {
		if errs[i] != nil {
			r.log.Warn("audit: region did not answer", "region", names[i], "err", errs[i])
			down = append(down, audit.Unreached{Region: names[i], Error: errs[i].Error()})
			continue
		}
		got = append(got, facts[i])
	}
	return got, down
}

// peerFacts asks one region for its facts.
func (r *Region) peerFacts(ctx context.Context, peer string) (*audit.Facts, error) {
	c := r.peers().client
	if c == nil {
		return nil, fmt.Errorf("region %s: no key of the deployment to sign peer calls with", peer)
	}
	resp, err := c.Do(ctx, peer, http.MethodGet, adminapi.AuditFactsPath, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuditFacts))
	if err != nil {
		return nil, fmt.Errorf("region %s: read facts: %w", peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("region %s answered %s: %s", peer, resp.Status, strings.TrimSpace(string(body)))
	}
	f := &audit.Facts{}
	if err := json.Unmarshal(body, f); err != nil {
		return nil, fmt.Errorf("region %s: malformed facts: %w", peer, err)
	}
	return f, nil
}
