package iamapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
)

type callerIdentityResult struct {
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
}

// getCallerIdentity answers who signed the request; like STS it needs no
// permission. UserId is the account for the root user, the user's ID for a
// user, and "ROLEID:session" for an assumed role.
func getCallerIdentity(ctx context.Context, c *call) (any, error) {
	p := c.caller
	res := callerIdentityResult{UserID: c.account, Account: c.account, Arn: p.ARN}
	switch {
	case p.UserName != "":
		u, err := c.h.store.User(ctx, c.account, p.UserName)
		if err != nil {
			return nil, err
		}
		res.UserID = u.ID
	case p.RoleName != "":
		r, err := c.h.store.Role(ctx, c.account, p.RoleName)
		if err != nil {
			return nil, err
		}
		res.UserID = r.ID + ":" + p.ARN[strings.LastIndex(p.ARN, "/")+1:]
	}
	return res, nil
}

type credentialsXML struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUserXML struct {
	AssumedRoleID string `xml:"AssumedRoleId"`
	Arn           string `xml:"Arn"`
}

type assumeRoleResult struct {
	Credentials     credentialsXML     `xml:"Credentials"`
	AssumedRoleUser assumedRoleUserXML `xml:"AssumedRoleUser"`
}

// assumeRole issues temporary credentials. The store decides against the
// role's trust policy and the caller's own policies; a refusal does not
// tell whether the role exists.
func assumeRole(ctx context.Context, c *call) (any, error) {
	// A session policy only narrows a session; ignoring one would hand out
	// more than was asked for.
	if c.form.has("Policy") || c.form.hasList("PolicyArns") {
		return nil, errSessionPolicy
	}
	secs, _, err := c.form.intParam("DurationSeconds", 900, 43200)
	if err != nil {
		return nil, err
	}
	roleARN := c.form.get("RoleArn")
	ss, err := c.h.store.AssumeRole(ctx, c.caller, roleARN, c.form.get("RoleSessionName"), time.Duration(secs)*time.Second)
	if errors.Is(err, iam.ErrAccessDenied) || errors.Is(err, iam.ErrNoSuchEntity) {
		msg := fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.caller.ARN, roleARN)
		return nil, &apiError{Code: "AccessDenied", Status: http.StatusForbidden, Message: msg, err: err}
	}
	if err != nil {
		return nil, err
	}
	return assumeRoleResult{
		Credentials: credentialsXML{AccessKeyID: ss.ID, SecretAccessKey: ss.Secret, SessionToken: ss.Token,
			Expiration: isoTime(ss.Expires)},
		AssumedRoleUser: assumedRoleUserXML{AssumedRoleID: ss.RoleID + ":" + ss.SessionName, Arn: ss.ARN()},
	}, nil
}
