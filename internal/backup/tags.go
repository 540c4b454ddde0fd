package backup

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/bulwark/bulwark/internal/meta"
)

func validateTags(tags map[string]string) error {
	if len(tags) > MaxTagsPerResource {
		return errorf(ErrLimitExceeded, "A resource can have at most %d tags.", MaxTagsPerResource)
	}
	for k, v := range tags {
		if k == "" || utf8.RuneCountInString(k) > 128 {
			return errorf(ErrInvalidParameter, "Invalid tag key %q: it must have 1 to 128 characters.", k)
		}
		if strings.HasPrefix(k, "aws:") {
			return errorf(ErrInvalidParameter, "Invalid tag key %q: the aws: prefix is reserved.", k)
		}
		if utf8.RuneCountInString(v) > 256 {
			return errorf(ErrInvalidParameter, "Invalid value of tag %q: it must have at most 256 characters.", k)
		}
	}
	return nil
}

// taggable checks that arn names an existing vault, live plan, restore
// testing plan, recovery point, framework or report plan of the account in
// the catalog's region.
func (c *Catalog) taggable(tx meta.Tx, account, arn string) error {
	notFound := errorf(ErrNotFound, "Resource %s does not exist.", arn)
	prefix := "arn:aws:backup:" + c.region + ":" + account + ":"
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		if !strings.HasPrefix(arn, "arn:") {
			return errorf(ErrInvalidParameter, "Invalid resource ARN %q.", arn)
		}
		return notFound
	}
	typ, name, _ := strings.Cut(rest, ":")
	switch typ {
	case "backup-vault":
		if name == "" || strings.Contains(name, "/") || tx.Get(spaceVaults, key(account, name)) == nil {
			return notFound
		}
	case "backup-plan":
		if _, err := livePlan(tx, account, name); err != nil {
			return notFound
		}
	case "restore-testing-plan":
		if !restoreTestingPlanOfARN(tx, account, arn, name) {
			return notFound
		}
	case "framework":
		if !auditResourceOfARN(tx, spaceFrameworks, account, arn, name) {
			return notFound
		}
	case "report-plan":
		if !auditResourceOfARN(tx, spaceReportPlans, account, arn, name) {
			return notFound
		}
	case "recovery-point":
		found := false
		err := scan(tx, spacePoints, key(account), func(k, _ []byte) error {
			found = found || strings.HasSuffix(string(k), "/"+name)
			return nil
		})
		if err != nil {
			return err
		}
		if name == "" || !found {
			return notFound
		}
	default:
		return notFound
	}
	return nil
}

// TagResource adds or replaces tags on a vault or plan.
func (c *Catalog) TagResource(ctx context.Context, account, arn string, tags map[string]string) error {
	if len(tags) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter Tags.")
	}
	if err := validateTags(tags); err != nil {
		return err
	}
	if err := c.initDefault(ctx, account); err != nil {
		return err
	}
	return c.update(ctx, func(tx meta.Tx) error {
		if err := c.taggable(tx, account, arn); err != nil {
			return err
		}
		cur := map[string]string{}
		if _, err := getJSON(tx, spaceTags, []byte(arn), &cur); err != nil {
			return err
		}
		for k, v := range tags {
			cur[k] = v
		}
		if err := validateTags(cur); err != nil {
			return err
		}
		return putJSON(tx, spaceTags, []byte(arn), cur)
	})
}

// UntagResource removes tags by key; keys not present are ignored.
func (c *Catalog) UntagResource(ctx context.Context, account, arn string, keys []string) error {
	if len(keys) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter TagKeyList.")
	}
	if err := c.initDefault(ctx, account); err != nil {
		return err
	}
	return c.update(ctx, func(tx meta.Tx) error {
		if err := c.taggable(tx, account, arn); err != nil {
			return err
		}
		cur := map[string]string{}
		if _, err := getJSON(tx, spaceTags, []byte(arn), &cur); err != nil {
			return err
		}
		for _, k := range keys {
			delete(cur, k)
		}
		if len(cur) == 0 {
			return tx.Delete(spaceTags, []byte(arn))
		}
		return putJSON(tx, spaceTags, []byte(arn), cur)
	})
}

// ListTags returns the tags of a vault or plan.
func (c *Catalog) ListTags(ctx context.Context, account, arn string) (map[string]string, error) {
	if err := c.initDefault(ctx, account); err != nil {
		return nil, err
	}
	cur := map[string]string{}
	err := c.view(ctx, func(tx meta.Tx) error {
		if err := c.taggable(tx, account, arn); err != nil {
			return err
		}
		_, err := getJSON(tx, spaceTags, []byte(arn), &cur)
		return err
	})
	if err != nil {
		return nil, err
	}
	return cur, nil
}
