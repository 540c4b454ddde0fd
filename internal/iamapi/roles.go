package iamapi

import (
	"context"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
)

// roleARN is the ARN of a role of the caller's account, with its path
// when the role exists.
func (c *call) roleARN(ctx context.Context, name string) string {
	if r, err := c.h.store.Role(ctx, c.account, name); err == nil {
		return r.ARN()
	}
	return c.arn("role", "/", name)
}

func namedRoleARN(ctx context.Context, c *call) (string, error) {
	return c.roleARN(ctx, c.form.get("RoleName")), nil
}

type roleResult struct {
	Role roleXML `xml:"Role"`
}

func createRole(ctx context.Context, c *call) (any, error) {
	if c.form.has("PermissionsBoundary") {
		return nil, errBoundary
	}
	if err := c.form.tags(); err != nil {
		return nil, err
	}
	maxSession, _, err := c.form.intParam("MaxSessionDuration", 3600, 43200)
	if err != nil {
		return nil, err
	}
	r, err := c.h.store.CreateRole(ctx, &iam.Role{Account: c.account, Name: c.form.get("RoleName"), Path: c.form.get("Path"),
		Trust: c.form.get("AssumeRolePolicyDocument"), Description: c.form.get("Description"),
		MaxSession: time.Duration(maxSession) * time.Second})
	if err != nil {
		return nil, err
	}
	return roleResult{Role: roleOf(r)}, nil
}

func getRole(ctx context.Context, c *call) (any, error) {
	r, err := c.h.store.Role(ctx, c.account, c.form.get("RoleName"))
	if err != nil {
		return nil, err
	}
	return roleResult{Role: roleOf(r)}, nil
}

type listRolesResult struct {
	Roles members[roleXML] `xml:"Roles"`
	listPage
}

func listRoles(ctx context.Context, c *call) (any, error) {
	roles, err := c.h.store.Roles(ctx, c.account, c.form.get("PathPrefix"))
	if err != nil {
		return nil, err
	}
	list, pg, err := pageOf(c.form, roles, func(r *iam.Role) string { return r.Name }, roleOf)
	if err != nil {
		return nil, err
	}
	return listRolesResult{Roles: list, listPage: pg}, nil
}

func deleteRole(ctx context.Context, c *call) (any, error) {
	return nil, c.h.store.DeleteRole(ctx, c.account, c.form.get("RoleName"))
}

func updateAssumeRolePolicy(ctx context.Context, c *call) (any, error) {
	return nil, c.h.store.UpdateAssumeRolePolicy(ctx, c.account, c.form.get("RoleName"), c.form.get("PolicyDocument"))
}
