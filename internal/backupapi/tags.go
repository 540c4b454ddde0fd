package backupapi

import (
	"context"
	"sort"
)

func tagResource(ctx context.Context, c *call) (any, error) {
	var in struct{ Tags map[string]string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	return nil, c.h.cat.TagResource(ctx, c.account, arn, in.Tags)
}

func untagResource(ctx context.Context, c *call) (any, error) {
	var in struct{ TagKeyList []string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	return nil, c.h.cat.UntagResource(ctx, c.account, arn, in.TagKeyList)
}

func listTags(ctx context.Context, c *call) (any, error) {
	arn := c.r.PathValue("arn")
	if err := c.authorize(ctx, arn); err != nil {
		return nil, err
	}
	tags, err := c.h.cat.ListTags(ctx, c.account, arn)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pg, next, err := page(c, keys, func(k string) string { return k })
	if err != nil {
		return nil, err
	}
	out := struct {
		Tags      map[string]string
		NextToken string `json:",omitempty"`
	}{Tags: map[string]string{}, NextToken: next}
	for _, k := range pg {
		out.Tags[k] = tags[k]
	}
	return out, nil
}
