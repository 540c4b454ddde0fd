package iamapi

import (
	"context"
	"strings"

	"github.com/bulwark/bulwark/internal/iam"
)

func (c *call) arn(kind, path, name string) string {
	if path == "" {
		path = "/"
	}
	return "arn:aws:iam::" + c.account + ":" + kind + path + name
}

// userARN is the ARN of a user of the caller's account, with its path
// when the user exists.
func (c *call) userARN(ctx context.Context, name string) string {
	if u, err := c.h.store.User(ctx, c.account, name); err == nil {
		return u.ARN()
	}
	return c.arn("user", "/", name)
}

// userParam returns the user a call names, or the caller's own user when
// it names none; "" stands for the root user, for the calls that accept it.
func (c *call) userParam(allowRoot bool) (string, error) {
	if n := c.form.get("UserName"); n != "" {
		return n, nil
	}
	switch {
	case c.caller.UserName != "":
		return c.caller.UserName, nil
	case allowRoot && c.caller.Root():
		return "", nil
	}
	return "", errNonUserCaller
}

// targetUserARN is the resource of calls on a user that default to the
// caller: the named user, or the caller itself.
func targetUserARN(ctx context.Context, c *call) (string, error) {
	name, err := c.userParam(true)
	if err != nil {
		return "", err
	}
	if name == "" {
		return c.caller.ARN, nil
	}
	return c.userARN(ctx, name), nil
}

func namedUserARN(ctx context.Context, c *call) (string, error) {
	return c.userARN(ctx, c.form.get("UserName")), nil
}

func anyResource(context.Context, *call) (string, error) { return "*", nil }

type userResult struct {
	User userXML `xml:"User"`
}

func createUser(ctx context.Context, c *call) (any, error) {
	if c.form.has("PermissionsBoundary") {
		return nil, errBoundary
	}
	if err := c.form.tags(); err != nil {
		return nil, err
	}
	u, err := c.h.store.CreateUser(ctx, c.account, c.form.get("UserName"), c.form.get("Path"))
	if err != nil {
		return nil, err
	}
	return userResult{User: userOf(u)}, nil
}

func getUser(ctx context.Context, c *call) (any, error) {
	name, err := c.userParam(true)
	if err != nil {
		return nil, err
	}
	if name == "" {
		// The root user: IAM describes it by its account.
		root := userXML{UserID: c.account, Arn: c.caller.ARN}
		if a, err := c.h.store.Account(ctx, c.account); err == nil {
			root.CreateDate = isoTime(a.Created)
		}
		return userResult{User: root}, nil
	}
	u, err := c.h.store.User(ctx, c.account, name)
	if err != nil {
		return nil, err
	}
	return userResult{User: userOf(u)}, nil
}

type listUsersResult struct {
	Users members[userXML] `xml:"Users"`
	listPage
}

func listUsers(ctx context.Context, c *call) (any, error) {
	users, err := c.h.store.Users(ctx, c.account, c.form.get("PathPrefix"))
	if err != nil {
		return nil, err
	}
	list, pg, err := pageOf(c.form, users, func(u *iam.User) string { return u.Name }, userOf)
	if err != nil {
		return nil, err
	}
	return listUsersResult{Users: list, listPage: pg}, nil
}

func deleteUser(ctx context.Context, c *call) (any, error) {
	return nil, c.h.store.DeleteUser(ctx, c.account, c.form.get("UserName"))
}

// newEntityARN is the resource of a create call: the ARN the new entity
// will have.
func newEntityARN(kind, nameParam string) func(context.Context, *call) (string, error) {
	return func(_ context.Context, c *call) (string, error) {
		path := c.form.get("Path")
		if path == "" || !strings.HasPrefix(path, "/") || !strings.HasSuffix(path, "/") {
			path = "/"
		}
		return c.arn(kind, path, c.form.get(nameParam)), nil
	}
}
