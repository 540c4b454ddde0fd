package iamapi

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bulwark/bulwark/internal/iam"
)

// policyARNParam is the resource of calls on one managed policy. Only the
// caller's own account's policies can be named: AWS managed policies do
// not exist in Bulwark, and another account's are not the caller's to see.
func policyARNParam(_ context.Context, c *call) (string, error) {
	arn := c.form.get("PolicyArn")
	acct, _, ok := splitPolicyARN(arn)
	if !ok {
		return "", fmt.Errorf("%w: ARN %s is not valid.", iam.ErrInvalidInput, arn)
	}
	if acct != c.account {
		return "", fmt.Errorf("%w: Policy %s does not exist or is not attachable.", iam.ErrNoSuchEntity, arn)
	}
	return arn, nil
}

// splitPolicyARN splits arn:aws:iam::ACCOUNT:policy/PATH/NAME into the
// account and the path.
func splitPolicyARN(arn string) (account, path string, ok bool) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	if !ok {
		return "", "", false
	}
	account, res, ok := strings.Cut(rest, ":policy/")
	if !ok || account == "" || res == "" || strings.HasSuffix(res, "/") {
		return "", "", false
	}
	return account, "/" + res[:strings.LastIndex(res, "/")+1], true
}

func policyName(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

type policyResult struct {
	Policy policyXML `xml:"Policy"`
}

func createPolicy(ctx context.Context, c *call) (any, error) {
	if err := c.form.tags(); err != nil {
		return nil, err
	}
	p, err := c.h.store.CreatePolicy(ctx, &iam.ManagedPolicy{Account: c.account, Name: c.form.get("PolicyName"),
		Path: c.form.get("Path"), Description: c.form.get("Description"), Document: c.form.get("PolicyDocument")})
	if err != nil {
		return nil, err
	}
	return policyResult{Policy: policyOf(p)}, nil
}

func getPolicy(ctx context.Context, c *call) (any, error) {
	p, err := c.h.store.Policy(ctx, c.form.get("PolicyArn"))
	if err != nil {
		return nil, err
	}
	return policyResult{Policy: policyOf(p)}, nil
}

func deletePolicy(ctx context.Context, c *call) (any, error) {
	return nil, c.h.store.DeletePolicy(ctx, c.form.get("PolicyArn"))
}

type listPoliciesResult struct {
	Policies members[policyXML] `xml:"Policies"`
	listPage
}

func listPolicies(ctx context.Context, c *call) (any, error) {
	var v validationError
	scope := c.form.get("Scope")
	if scope != "" && !slices.Contains([]string{"All", "AWS", "Local"}, scope) {
		v.add("Value '%s' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]", scope)
	}
	usage := c.form.get("PolicyUsageFilter")
	if usage != "" && usage != "PermissionsPolicy" && usage != "PermissionsBoundary" {
		v.add("Value '%s' at 'policyUsageFilter' failed to satisfy constraint: Member must satisfy enum value set: [PermissionsPolicy, PermissionsBoundary]", usage)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	onlyAttached, err := c.form.boolParam("OnlyAttached")
	if err != nil {
		return nil, err
	}
	var policies []*iam.ManagedPolicy
	// Bulwark has no AWS managed policies, and no permissions boundaries.
	if scope != "AWS" && usage != "PermissionsBoundary" {
		if policies, err = c.h.store.Policies(ctx, c.account); err != nil {
			return nil, err
		}
	}
	prefix := orSlash(c.form.get("PathPrefix"))
	policies = slices.DeleteFunc(policies, func(p *iam.ManagedPolicy) bool {
		return !strings.HasPrefix(p.Path, prefix) || onlyAttached && p.Attachments == 0
	})
	list, pg, err := pageOf(c.form, policies, func(p *iam.ManagedPolicy) string { return p.Name }, policyOf)
	if err != nil {
		return nil, err
	}
	return listPoliciesResult{Policies: list, listPage: pg}, nil
}

func orSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func attachPolicy(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		if _, err := policyARNParam(ctx, c); err != nil {
			return nil, err
		}
		return nil, c.h.store.AttachPolicy(ctx, kind, c.account, c.form.get(nameParam(kind)), c.form.get("PolicyArn"))
	}
}

func detachPolicy(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		return nil, c.h.store.DetachPolicy(ctx, kind, c.account, c.form.get(nameParam(kind)), c.form.get("PolicyArn"))
	}
}

type listAttachedPoliciesResult struct {
	AttachedPolicies members[attachedPolicyXML] `xml:"AttachedPolicies"`
	listPage
}

func listAttachedPolicies(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		arns, err := c.h.store.AttachedPolicies(ctx, kind, c.account, c.form.get(nameParam(kind)))
		if err != nil {
			return nil, err
		}
		prefix := orSlash(c.form.get("PathPrefix"))
		arns = slices.DeleteFunc(arns, func(arn string) bool {
			_, path, _ := splitPolicyARN(arn)
			return !strings.HasPrefix(path, prefix)
		})
		list, pg, err := pageOf(c.form, arns, func(arn string) string { return arn }, func(arn string) attachedPolicyXML {
			return attachedPolicyXML{PolicyName: policyName(arn), PolicyArn: arn}
		})
		if err != nil {
			return nil, err
		}
		return listAttachedPoliciesResult{AttachedPolicies: list, listPage: pg}, nil
	}
}
