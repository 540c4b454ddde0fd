package iamapi

import (
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// maxBody bounds a request body. IAM's largest parameters are policy
// documents of at most 131,072 characters, which percent-encoding can
// triple.
const maxBody = 1 << 20

// maxListMembers bounds the index of a Name.member.N parameter, so that a
// request cannot make the parser allocate for indices it never sent.
const maxListMembers = 1000

// form holds the parameters of a Query request.
type form struct{ v url.Values }

// parseForm reads the parameters of a Query request: the form-encoded body
// and the URL's query, the body first. The signature parameters of a
// presigned URL are not parameters of the operation and are dropped.
func parseForm(body []byte, rawQuery string) (form, error) {
	f := form{v: url.Values{}}
	for _, raw := range []string{string(body), rawQuery} {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return form{}, errf("MalformedQueryString", 400, "The request parameters could not be parsed: %v", err)
		}
		for k, vs := range vals {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
				continue
			}
			f.v[k] = append(f.v[k], vs...)
		}
	}
	return f, nil
}

// get returns a parameter's first value, "" when absent.
func (f form) get(name string) string { return f.v.Get(name) }

func (f form) has(name string) bool { return len(f.v[name]) > 0 }

// require checks that every named parameter is present and non-empty, and
// reports all that are not in one ValidationError, as AWS does.
func (f form) require(names ...string) error {
	var v validationError
	for _, n := range names {
		switch {
		case !f.has(n):
			v.add("Value null at '%s' failed to satisfy constraint: Member must not be null", memberName(n))
		case f.get(n) == "":
			v.add("Value '' at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", memberName(n))
		}
	}
	return v.err()
}

// intParam reads an optional integer parameter bounded by lo and hi; ok is
// false when it is absent.
func (f form) intParam(name string, lo, hi int) (n int, ok bool, err error) {
	if !f.has(name) {
		return 0, false, nil
	}
	s := f.get(name)
	var v validationError
	n, perr := strconv.Atoi(s)
	switch {
	case perr != nil:
		v.add("Value '%s' at '%s' failed to satisfy constraint: Member must be an integer", s, memberName(name))
	case n < lo:
		v.add("Value '%d' at '%s' failed to satisfy constraint: Member must have value greater than or equal to %d", n, memberName(name), lo)
	case n > hi:
		v.add("Value '%d' at '%s' failed to satisfy constraint: Member must have value less than or equal to %d", n, memberName(name), hi)
	}
	if err := v.err(); err != nil {
		return 0, false, err
	}
	return n, true, nil
}

// boolParam reads an optional boolean parameter.
func (f form) boolParam(name string) (bool, error) {
	if !f.has(name) {
		return false, nil
	}
	switch strings.ToLower(f.get(name)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	var v validationError
	v.add("Value '%s' at '%s' failed to satisfy constraint: Member must be a boolean", f.get(name), memberName(name))
	return false, v.err()
}

// structList reads a list of structures sent as Name.member.N.Field, in
// the order of N. Each element maps its fields to their values.
func (f form) structList(name string) ([]map[string]string, error) {
	byIndex := map[int]map[string]string{}
	prefix := name + ".member."
	for k, vs := range f.v {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		idx, field, ok := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if !ok || field == "" || err != nil || n < 1 || n > maxListMembers {
			return nil, errf("MalformedQueryString", 400, "The parameter %s is not a valid member of the list %s.", k, name)
		}
		if byIndex[n] == nil {
			byIndex[n] = map[string]string{}
		}
		byIndex[n][field] = vs[0]
	}
	return inOrder(byIndex), nil
}

// list reads a list of strings sent as Name.member.N, in the order of N.
func (f form) list(name string) ([]string, error) {
	byIndex := map[int]string{}
	prefix := name + ".member."
	for k, vs := range f.v {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > maxListMembers {
			return nil, errf("MalformedQueryString", 400, "The parameter %s is not a valid member of the list %s.", k, name)
		}
		byIndex[n] = vs[0]
	}
	return inOrder(byIndex), nil
}

func inOrder[T any](byIndex map[int]T) []T {
	idx := make([]int, 0, len(byIndex))
	for n := range byIndex {
		idx = append(idx, n)
	}
	slices.Sort(idx)
	out := make([]T, 0, len(idx))
	for _, n := range idx {
		out = append(out, byIndex[n])
	}
	return out
}

// hasList reports whether any member of a list was sent.
func (f form) hasList(name string) bool {
	for k := range f.v {
		if k == name || strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

// tags checks the Tags list of a create call. Bulwark keeps no tags on IAM
// entities yet; the list is checked so that a malformed one fails as it
// would on AWS.
func (f form) tags() error {
	tags, err := f.structList("Tags")
	if err != nil {
		return err
	}
	var v validationError
	for i, t := range tags {
		if _, ok := t["Key"]; !ok {
			v.add("Value null at 'tags.%d.member.key' failed to satisfy constraint: Member must not be null", i+1)
		}
		if _, ok := t["Value"]; !ok {
			v.add("Value null at 'tags.%d.member.value' failed to satisfy constraint: Member must not be null", i+1)
		}
	}
	if len(tags) > 50 {
		v.add("Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	return v.err()
}

// defaultMaxItems is how many items a list call returns when MaxItems is
// not given, as IAM does.
const defaultMaxItems = 100

// page cuts one page out of items, sorted by key, after the request's
// Marker, at most MaxItems long. The marker handed back is opaque to the
// client: the key of the first item of the next page.
func page[T any](f form, items []T, key func(T) string) (out []T, truncated bool, marker string, err error) {
	limit, ok, err := f.intParam("MaxItems", 1, 1000)
	if err != nil {
		return nil, false, "", err
	}
	if !ok {
		limit = defaultMaxItems
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	if m := f.get("Marker"); m != "" {
		from, derr := base64.RawURLEncoding.DecodeString(m)
		if derr != nil {
			return nil, false, "", apiErr("InvalidInput", 400, "The marker is not valid.")
		}
		i, _ := slices.BinarySearchFunc(items, string(from), func(t T, k string) int { return strings.Compare(key(t), k) })
		items = items[i:]
	}
	if len(items) > limit {
		return items[:limit], true, base64.RawURLEncoding.EncodeToString([]byte(key(items[limit]))), nil
	}
	return items, false, "", nil
}

// pageOf cuts a page out of items as page does and renders its items.
func pageOf[T, X any](f form, items []T, key func(T) string, render func(T) X) (members[X], listPage, error) {
	items, truncated, marker, err := page(f, items, key)
	if err != nil {
		return members[X]{}, listPage{}, err
	}
	out := make([]X, 0, len(items))
	for _, it := range items {
		out = append(out, render(it))
	}
	return members[X]{Member: out}, listPage{IsTruncated: truncated, Marker: marker}, nil
}
