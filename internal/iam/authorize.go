package iam

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"github.com/bulwark/bulwark/internal/iam/policy"
)

// Kinds of the documents IAM stores.
const (
	identityKind = policy.Identity
	trustKind    = policy.Trust
)

// ResourceKind is the policy kind of bucket policies and vault access
// policies, for Request.ResourcePolicyKind.
const ResourceKind = policy.Resource

// checkPolicy parses a document of the given kind, for the calls that
// store one.
func checkPolicy(doc string, kind policy.Kind) error {
	if _, err := policy.Parse([]byte(doc), kind); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedPolicy, err)
	}
	return nil
}

// CheckBucketPolicy validates a policy for bucket before it is stored, as
// S3 does (policy.ParseBucket): beyond the policy language, its resources
// must be the bucket and its objects, and its actions S3's. Errors wrap
// ErrMalformedPolicy and the parser's *policy.MalformedError, whose Message
// is S3's wording for the MalformedPolicy answer.
func CheckBucketPolicy(doc []byte, bucket string) error {
	if _, err := policy.ParseBucket(doc, bucket); err != nil {
		return fmt.Errorf("bucket policy of %q: %w: %w", bucket, ErrMalformedPolicy, err)
	}
	return nil
}

// Evaluator decides requests with AWS's policy evaluation logic: an
// explicit Deny in any applicable policy wins; otherwise, within one
// account, an Allow in the principal's identity policies or in the
// resource's policy is enough; across accounts both the identity side and
// the resource policy must allow. An account's root user holds every
// permission of its account on the identity side. Anonymous requests are
// allowed only by a resource policy that names "*".
type Evaluator struct {
	Store *Store

	mu    sync.Mutex
	cache map[[32]byte]*policy.Policy
}

// Authorize implements Authorizer.
func (e *Evaluator) Authorize(ctx context.Context, req *Request) error {
	preq := &policy.Request{Action: req.Action, Resource: req.Resource, Context: req.Context}
	if p := req.Principal; p != nil {
		preq.Principal = &policy.Principal{Account: p.AccountID, ARN: p.ARN, RoleARN: p.RoleARN, Service: p.Service}
		if preq.Context == nil {
			preq.Context = map[string][]string{}
		}
		setDefault(preq.Context, "aws:PrincipalAccount", p.AccountID)
		setDefault(preq.Context, "aws:PrincipalArn", p.ARN)
		if p.UserName != "" {
			setDefault(preq.Context, "aws:username", p.UserName)
		}
	}
	resource := policy.NotApplicable
	if len(req.ResourcePolicy) > 0 {
		kind := req.ResourcePolicyKind
		rp, err := e.parse(req.ResourcePolicy, kind)
		if err != nil {
			return fmt.Errorf("%w: the resource policy of %s cannot be read: %v", ErrAccessDenied, req.Resource, err)
		}
		resource = rp.Evaluate(preq)
	}
	if resource == policy.Deny {
		return e.denied(req, "an explicit deny in a resource-based policy")
	}
	if req.Principal == nil {
		if resource == policy.Allow {
			return nil
		}
		return e.denied(req, "no resource-based policy allows anonymous access")
	}
	identity, err := e.identity(ctx, req.Principal, preq)
	if err != nil {
		return err
	}
	if identity == policy.Deny {
		return e.denied(req, "an explicit deny in an identity-based policy")
	}
	same := req.ResourceOwner == "" || req.ResourceOwner == req.Principal.AccountID
	switch {
	case same && (identity == policy.Allow || resource == policy.Allow):
		return nil
	case !same && identity == policy.Allow && resource == policy.Allow:
		return nil
	case !same && identity == policy.Allow:
		return e.denied(req, "no resource-based policy of account "+req.ResourceOwner+" allows it")
	default:
		return e.denied(req, "no identity-based policy allows it")
	}
}

func setDefault(ctx map[string][]string, key, v string) {
	for k := range ctx {
		if strings.EqualFold(k, key) {
			return
		}
	}
	ctx[key] = []string{v}
}

func (e *Evaluator) denied(req *Request, why string) error {
	who := "anonymous"
	if req.Principal != nil {
		who = req.Principal.ARN
	}
	return fmt.Errorf("%w: User: %s is not authorized to perform: %s on resource: \"%s\" because %s", ErrAccessDenied, who, req.Action, req.Resource, why)
}

// identity evaluates the principal's own policies: everything for the root
// user, the user's inline and attached policies, or the role's for a
// session. A service principal has none.
func (e *Evaluator) identity(ctx context.Context, p *Principal, req *policy.Request) (policy.Decision, error) {
	if p.Root() {
		return policy.Allow, nil
	}
	var docs []string
	switch {
	case p.UserName != "" && e.Store != nil:
		u, err := e.Store.User(ctx, p.AccountID, p.UserName)
		if err != nil {
			return policy.NotApplicable, nil // deleted meanwhile: nothing allows
		}
		docs, err = e.docs(ctx, u.Policies, u.Attached)
		if err != nil {
			return 0, err
		}
	case p.RoleName != "" && e.Store != nil:
		r, err := e.Store.Role(ctx, p.AccountID, p.RoleName)
		if err != nil {
			return policy.NotApplicable, nil
		}
		docs, err = e.docs(ctx, r.Policies, r.Attached)
		if err != nil {
			return 0, err
		}
	}
	out := policy.NotApplicable
	for _, d := range docs {
		pol, err := e.parse([]byte(d), identityKind)
		if err != nil {
			continue // stored documents were checked when stored
		}
		switch pol.Evaluate(req) {
		case policy.Deny:
			return policy.Deny, nil
		case policy.Allow:
			out = policy.Allow
		}
	}
	return out, nil
}

func (e *Evaluator) docs(ctx context.Context, inline map[string]string, attached []string) ([]string, error) {
	var out []string
	for _, d := range inline {
		out = append(out, d)
	}
	for _, arn := range attached {
		mp, err := e.Store.Policy(ctx, arn)
		if err != nil {
			continue
		}
		out = append(out, mp.Document)
	}
	return out, nil
}

// parse parses a document once and keeps it, by content.
func (e *Evaluator) parse(doc []byte, kind policy.Kind) (*policy.Policy, error) {
	h := sha256.Sum256(append([]byte{byte(kind)}, doc...))
	e.mu.Lock()
	if p, ok := e.cache[h]; ok {
		e.mu.Unlock()
		return p, nil
	}
	e.mu.Unlock()
	p, err := policy.Parse(doc, kind)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.cache == nil || len(e.cache) > 4096 {
		e.cache = map[[32]byte]*policy.Policy{}
	}
	e.cache[h] = p
	e.mu.Unlock()
	return p, nil
}
