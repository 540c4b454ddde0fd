package policy

import (
	"fmt"
	"strings"
)

// Request is what is being decided.
type Request struct {
	// Principal is who asks; nil means anonymous.
	Principal *Principal
	// Action is matched case-insensitively, e.g. "s3:GetObject".
	Action string
	// Resource is an ARN such as "arn:aws:s3:::bucket/key", or "*" for
	// actions without a resource.
	Resource string
	// Context holds the condition keys and policy variables, each with one
	// or more values: "aws:SourceIp", "aws:SecureTransport", "s3:prefix",
	// "s3:ExistingObjectTag/team", "aws:PrincipalAccount", "aws:username",
	// "aws:CurrentTime", "aws:EpochTime", "s3:max-keys", ... Names are
	// case-insensitive; a name with no values counts as absent.
	Context map[string][]string
}

// Principal is who asks.
type Principal struct {
	Account string // 12-digit account ID
	// ARN is the principal's own ARN: arn:aws:iam::111122223333:user/alice,
	// arn:aws:iam::111122223333:root,
	// arn:aws:sts::111122223333:assumed-role/role-name/session-name; for
	// AssumeRoleWithSAML/WebIdentity, the identity provider a Federated
	// principal names.
	ARN string
	// RoleARN is the role of an assumed-role session
	// (arn:aws:iam::111122223333:role/role-name).
	RoleARN string
	// Service is set when a service principal asks, e.g. "s3.amazonaws.com".
	Service string
}

// Decision is what one document says about a request.
type Decision int

const (
	// NotApplicable: no statement applies; the request is implicitly denied
	// unless another policy allows it.
	NotApplicable Decision = iota
	Allow
	Deny
)

func (d Decision) String() string {
	switch d {
	case NotApplicable:
		return "NotApplicable"
	case Allow:
		return "Allow"
	case Deny:
		return "Deny"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

// Evaluate returns Deny if any statement that applies to the request denies,
// else Allow if any applicable statement allows, else NotApplicable. For
// Resource and Trust kinds a statement applies only when its Principal or
// NotPrincipal matches req.Principal.
func (p *Policy) Evaluate(req *Request) Decision {
	if p == nil || req == nil {
		return NotApplicable
	}
	ctx := &evalContext{raw: req.Context}
	vars := p.variables()
	d := NotApplicable
	for i := range p.Statements {
		st := &p.Statements[i]
		if !st.applies(p.kind, req, ctx, vars) {
			continue
		}
		switch st.Effect {
		case "Deny":
			return Deny
		case "Allow":
			d = Allow
		}
	}
	return d
}

func (st *Statement) applies(kind Kind, req *Request, ctx *evalContext, vars bool) bool {
	if kind != Identity {
		switch {
		case st.Principal != nil:
			if !st.Principal.matches(req.Principal) {
				return false
			}
		case st.NotPrincipal != nil:
			if st.NotPrincipal.matches(req.Principal) {
				return false
			}
		default:
			return false
		}
	}
	switch {
	case st.Action != nil:
		if !anyActionMatches(st.Action, req.Action) {
			return false
		}
	case st.NotAction != nil:
		if anyActionMatches(st.NotAction, req.Action) {
			return false
		}
	default:
		return false
	}
	switch {
	case st.Resource != nil:
		if !anyResourceMatches(st.Resource, req.Resource, ctx, vars) {
			return false
		}
	case st.NotResource != nil:
		if anyResourceMatches(st.NotResource, req.Resource, ctx, vars) {
			return false
		}
	case kind != Trust:
		return false
	}
	for i := range st.Conditions {
		if !st.Conditions[i].holds(ctx, vars) {
			return false
		}
	}
	return true
}

func anyActionMatches(patterns []string, action string) bool {
	for _, a := range patterns {
		if p, _ := compile(a, true, false, nil); p.match(action, true) {
			return true
		}
	}
	return false
}

// anyResourceMatches matches resource ARNs case-sensitively; an entry whose
// policy variable has no value matches nothing.
func anyResourceMatches(patterns []string, resource string, ctx *evalContext, vars bool) bool {
	for _, r := range patterns {
		if p, ok := compile(r, true, vars, ctx); ok && p.match(resource, false) {
			return true
		}
	}
	return false
}

// evalContext is the request context with its keys folded to lower case,
// built on first use.
type evalContext struct {
	raw   map[string][]string
	lower map[string][]string
}

func (c *evalContext) values(key string) []string {
	if c == nil {
		return nil
	}
	if c.lower == nil {
		c.lower = make(map[string][]string, len(c.raw))
		for k, v := range c.raw {
			lk := strings.ToLower(k)
			c.lower[lk] = append(c.lower[lk], v...)
		}
	}
	return c.lower[strings.ToLower(key)]
}
