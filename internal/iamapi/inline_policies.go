package iamapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/iam"
)

// Inline policies work the same on users and roles; these build each
// operation for one kind of holder. nameParam is UserName or RoleName.

func nameParam(kind string) string {
	if kind == iam.EntityRole {
		return "RoleName"
	}
	return "UserName"
}

func putInlinePolicy(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		return nil, c.h.store.PutInlinePolicy(ctx, kind, c.account, c.form.get(nameParam(kind)),
			c.form.get("PolicyName"), c.form.get("PolicyDocument"))
	}
}

type inlinePolicyResult struct {
	UserName       string `xml:"UserName,omitempty"`
	RoleName       string `xml:"RoleName,omitempty"`
	PolicyName     string `xml:"PolicyName"`
	PolicyDocument string `xml:"PolicyDocument"`
}

func getInlinePolicy(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		name, policy := c.form.get(nameParam(kind)), c.form.get("PolicyName")
		doc, err := c.h.store.InlinePolicy(ctx, kind, c.account, name, policy)
		if err != nil {
			return nil, err
		}
		res := inlinePolicyResult{PolicyName: policy, PolicyDocument: encodeDoc(doc)}
		if kind == iam.EntityRole {
			res.RoleName = name
		} else {
			res.UserName = name
		}
		return res, nil
	}
}

func deleteInlinePolicy(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		return nil, c.h.store.DeleteInlinePolicy(ctx, kind, c.account, c.form.get(nameParam(kind)), c.form.get("PolicyName"))
	}
}

type listInlinePoliciesResult struct {
	PolicyNames members[string] `xml:"PolicyNames"`
	listPage
}

func listInlinePolicies(kind string) func(context.Context, *call) (any, error) {
	return func(ctx context.Context, c *call) (any, error) {
		names, err := c.h.store.InlinePolicies(ctx, kind, c.account, c.form.get(nameParam(kind)))
		if err != nil {
			return nil, err
		}
		same := func(n string) string { return n }
		list, pg, err := pageOf(c.form, names, same, same)
		if err != nil {
			return nil, err
		}
		return listInlinePoliciesResult{PolicyNames: list, listPage: pg}, nil
	}
}
