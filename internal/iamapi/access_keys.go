package iamapi

import (
	"context"

	"github.com/bulwark/bulwark/internal/iam"
)

type createAccessKeyResult struct {
	AccessKey accessKeyXML `xml:"AccessKey"`
}

// createAccessKey returns the secret this once; no later call shows it.
func createAccessKey(ctx context.Context, c *call) (any, error) {
	user, err := c.userParam(true)
	if err != nil {
		return nil, err
	}
	k, err := c.h.store.CreateAccessKey(ctx, c.account, user)
	if err != nil {
		return nil, err
	}
	return createAccessKeyResult{AccessKey: accessKeyXML{UserName: k.User, AccessKeyID: k.ID, Status: k.Status,
		SecretAccessKey: k.Secret, CreateDate: isoTime(k.Created)}}, nil
}

type listAccessKeysResult struct {
	AccessKeyMetadata members[accessKeyXML] `xml:"AccessKeyMetadata"`
	listPage
}

func listAccessKeys(ctx context.Context, c *call) (any, error) {
	user, err := c.userParam(true)
	if err != nil {
		return nil, err
	}
	keys, err := c.h.store.AccessKeys(ctx, c.account, user)
	if err != nil {
		return nil, err
	}
	// Never the secret: it is shown once, by CreateAccessKey.
	list, pg, err := pageOf(c.form, keys, func(k *iam.AccessKey) string { return k.ID }, func(k *iam.AccessKey) accessKeyXML {
		return accessKeyXML{UserName: k.User, AccessKeyID: k.ID, Status: k.Status, CreateDate: isoTime(k.Created)}
	})
	if err != nil {
		return nil, err
	}
	return listAccessKeysResult{AccessKeyMetadata: list, listPage: pg}, nil
}

func updateAccessKey(ctx context.Context, c *call) (any, error) {
	user, err := c.userParam(true)
	if err != nil {
		return nil, err
	}
	status := c.form.get("Status")
	if status != iam.KeyActive && status != iam.KeyInactive {
		var v validationError
		v.add("Value '%s' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]", status)
		return nil, v.err()
	}
	return nil, c.h.store.UpdateAccessKey(ctx, c.account, user, c.form.get("AccessKeyId"), status)
}

func deleteAccessKey(ctx context.Context, c *call) (any, error) {
	user, err := c.userParam(true)
	if err != nil {
		return nil, err
	}
	return nil, c.h.store.DeleteAccessKey(ctx, c.account, user, c.form.get("AccessKeyId"))
}
