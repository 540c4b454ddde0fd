package policy

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseSeeds are documents FuzzParse starts from, accepted and refused.
var parseSeeds = []string{
	`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`,
	`{"Statement":[{"Sid":"A","Effect":"Deny","NotPrincipal":{"AWS":["111122223333"]},"NotAction":"s3:*","NotResource":"*"}]}`,
	`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole",
	  "Condition":{"StringEquals":{"sts:ExternalId":["x",1,true]},"ForAllValues:StringLikeIfExists":{"aws:TagKeys":"a*"}}}}`,
	`{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},
	  "DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},"NumericLessThan":{"s3:max-keys":1e2},"Null":{"aws:username":"true"}}}}`,
	`{"Statement":{"Effect":"Allow","Effect":"Allow"}}`,
	`{"Statement":[]}`,
	`[`,
	`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/${aws:username, 'x'}/${*}"}}`,
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		for k := range 3 {
			f.Add([]byte(s), uint8(k))
		}
	}
	req := &Request{
		Principal: alice, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k",
		Context: map[string][]string{"aws:username": {"alice"}, "aws:SourceIp": {"10.1.1.1"}, "aws:TagKeys": {"a", "b"}},
	}
	f.Fuzz(func(t *testing.T, doc []byte, k uint8) {
		kind := Kind(k % 3)
		p, err := Parse(doc, kind)
		if err != nil {
			var me *MalformedError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &me) || me.Message == "" {
				t.Fatalf("error %v is not a MalformedError", err)
			}
			return
		}
		again, err := Parse(p.JSON(), kind)
		if err != nil {
			t.Fatalf("JSON() of an accepted document is refused: %v", err)
		}
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("re-parse differs:\n%+v\n%+v", p, again)
		}
		p.Evaluate(req)
		p.Evaluate(&Request{})
	})
}

// The generator below turns fuzz bytes into a policy model, the document
// for it, and a request. The oracle decides the model directly, as plainly
// as possible: wildcards through regexp, principals by comparing strings,
// conditions by loops, numbers with strconv, addresses with package net.

type byteSource struct{ b []byte }

func (s *byteSource) next() int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	return v
}

func (s *byteSource) intn(n int) int { return s.next() % n }

func pick[T any](s *byteSource, xs []T) T { return xs[s.intn(len(xs))] }

func pickSome(s *byteSource, xs []string, max int) []string {
	n := 1 + s.intn(max)
	out := make([]string, n)
	for i := range out {
		out[i] = pick(s, xs)
	}
	return out
}

type modelPolicy struct {
	kind    Kind
	version string
	stmts   []modelStatement
}

type modelStatement struct {
	effect                  string
	principal, notPrincipal *modelPrincipals
	action, notAction       []string
	resource, notResource   []string
	conds                   []modelCondition
}

type modelPrincipals struct {
	wildcard     bool
	aws, service []string
}

type modelCondition struct {
	op, key string
	values  []string
}

var (
	genActions = []string{"*", "s3:*", "s3:Get*", "s3:GetObject", "s3:PutObject", "s3:?etObject",
		"s3:*Object", "S3:getobject", "iam:*", "s3:List*", "s3:GetObject*", "s?:*Bucket"}
	genTrustActions = []string{"sts:AssumeRole", "sts:*", "sts:Assume*", "sts:TagSession", "STS:assumerole", "sts:?agSession"}
	genResources    = []string{"*", "arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket*",
		"arn:aws:s3:::b?cket/*", "arn:aws:s3:::bucket/home/${aws:username}/*", "arn:aws:s3:::bucket/${*}",
		"arn:aws:*", "arn:aws:s3:::bucket/a?c", "arn:aws:s3:::other/*", "arn:aws:s3:::bucket/${aws:username, 'guest'}",
		"arn:aws:s3:::bucket/${AWS:UserName}${?}", "arn:aws:s3:::bucket/ab?", "arn:aws:s3:::bucket/*a*?c"}
	genAWSPrincipals = []string{"*", "111122223333", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/alice",
		"arn:aws:iam::111122223333:role/r", "arn:aws:sts::111122223333:assumed-role/r/s1", "444455556666",
		"arn:aws:iam::444455556666:user/alice"}
	genServices = []string{"s3.amazonaws.com", "backup.amazonaws.com"}

	reqPrincipals = []*Principal{
		nil,
		{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"},
		{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/bob"},
		{Account: "111122223333", ARN: "arn:aws:iam::111122223333:root"},
		{Account: "111122223333", ARN: "arn:aws:sts::111122223333:assumed-role/r/s1", RoleARN: "arn:aws:iam::111122223333:role/r"},
		{Account: "111122223333", ARN: "arn:aws:sts::111122223333:assumed-role/r/s2", RoleARN: "arn:aws:iam::111122223333:role/r"},
		{Account: "111122223333", ARN: "arn:aws:iam::111122223333:role/r"},
		{Account: "444455556666", ARN: "arn:aws:iam::444455556666:user/alice"},
		{Service: "s3.amazonaws.com"},
		{Service: "backup.amazonaws.com"},
	}
	reqActions = []string{"s3:GetObject", "s3:PutObject", "s3:GetObjectAcl", "s3:ListBucket", "iam:CreateUser",
		"S3:GETOBJECT", "s3:SetObject", "sts:AssumeRole", "sts:TagSession", "sts:AssumeRoleWithSAML"}
	reqResources = []string{"arn:aws:s3:::bucket", "arn:aws:s3:::bucket/key", "arn:aws:s3:::bucket/home/alice/x",
		"arn:aws:s3:::bucket/home/bob/x", "arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/abc", "arn:aws:s3:::bucket/a/c",
		"arn:aws:s3:::bocket/x", "arn:aws:s3:::other/x", "*", "arn:aws:s3:::bucket/guest", "arn:aws:s3:::bucket/home/*/x",
		"arn:aws:s3:::bucket/alice?", "arn:aws:s3:::bucket/alicex", "arn:aws:s3:::bucket/ab", "arn:aws:s3:::bucket/abc"}
)

// genKeys are the condition keys, each with the values a request may carry.
var genKeys = []struct {
	name, typ string
	values    []string
}{
	{"aws:username", "string", []string{"alice", "bob", "Alice", "*", ""}},
	{"s3:prefix", "string", []string{"home/", "home/alice/", "public", "home/bob/x", "a?c"}},
	{"aws:TagKeys", "string", []string{"team", "owner", "cost-center", "Team"}},
	{"aws:PrincipalAccount", "string", []string{"111122223333", "444455556666"}},
	{"aws:SecureTransport", "bool", []string{"true", "false", "TRUE"}},
	{"s3:max-keys", "numeric", []string{"10", "100", "9.5", "1e2", "abc", "-3"}},
	{"aws:SourceIp", "ip", []string{"10.0.0.1", "10.1.2.3", "192.168.1.1", "2001:db8::1", "::ffff:10.0.0.1", "bogus"}},
	{"aws:CurrentTime", "date", []string{"2024-01-01T00:00:00Z", "2023-06-01T12:00:00Z", "2025-01-01T00:00:00Z", "1704067200", "soon"}},
	{"aws:SourceArn", "arn", []string{"arn:aws:s3:::bucket", "arn:aws:s3:::bucket/x:y", "arn:aws:iam::111122223333:role/r",
		"arn:aws:s3:us-east-1::bucket", "bucket"}},
}

// genOperators are the base operators with their types; policy values come
// from genPolicyValues.
var genOperators = []struct{ name, typ string }{
	{"StringEquals", "string"}, {"StringNotEquals", "string"}, {"StringEqualsIgnoreCase", "string"},
	{"StringNotEqualsIgnoreCase", "string"}, {"StringLike", "string"}, {"StringNotLike", "string"},
	{"Bool", "bool"}, {"NumericEquals", "numeric"}, {"NumericNotEquals", "numeric"}, {"NumericLessThan", "numeric"},
	{"NumericGreaterThanEquals", "numeric"}, {"IpAddress", "ip"}, {"NotIpAddress", "ip"},
	{"DateLessThan", "date"}, {"DateEquals", "date"}, {"DateGreaterThan", "date"},
	{"ArnLike", "arn"}, {"ArnNotEquals", "arn"}, {"Null", "null"},
}

var genPolicyValues = map[string][]string{
	"string": {"alice", "bob", "ALICE", "home/*", "home/${aws:username}/*", "${aws:username}", "team", "t?am", "*",
		"${aws:PrincipalAccount}", "111122223333", "${*}", "a${?}c", "${aws:username, 'bob'}"},
	"bool":    {"true", "false"},
	"numeric": {"10", "100", "9.5", "-3"},
	"ip":      {"10.0.0.0/8", "10.0.0.1", "192.168.0.0/16", "2001:db8::/32"},
	"date":    {"2024-01-01T00:00:00Z", "1704067200", "2024-06-01T00:00:00+02:00"},
	"arn":     {"arn:aws:s3:::bucket", "arn:aws:s3:::bucket*", "arn:aws:s3:::*", "arn:aws:iam::*:role/r", "arn:aws:*:::bucket", "*"},
	"null":    {"true", "false"},
}

func genPolicy(s *byteSource) *modelPolicy {
	m := &modelPolicy{kind: Kind(s.intn(3)), version: Version2012}
	if s.intn(4) == 0 {
		m.version = ""
	}
	for range 1 + s.intn(4) {
		m.stmts = append(m.stmts, genStatement(s, m.kind))
	}
	return m
}

func genStatement(s *byteSource, kind Kind) modelStatement {
	st := modelStatement{effect: pick(s, []string{"Allow", "Deny"})}
	switch kind {
	case Resource:
		if st.effect == "Deny" && s.intn(3) == 0 {
			st.notPrincipal = genPrincipals(s)
		} else {
			st.principal = genPrincipals(s)
		}
	case Trust:
		st.principal = genPrincipals(s)
	}
	actions := genActions
	if kind == Trust {
		actions = genTrustActions
	}
	if list := pickSome(s, actions, 3); s.intn(4) == 0 {
		st.notAction = list
	} else {
		st.action = list
	}
	if kind != Trust {
		if list := pickSome(s, genResources, 3); s.intn(4) == 0 {
			st.notResource = list
		} else {
			st.resource = list
		}
	}
	seen := map[string]bool{}
	for range s.intn(3) {
		c := genCondition(s)
		if id := c.op + "\x00" + c.key; !seen[id] {
			seen[id] = true
			st.conds = append(st.conds, c)
		}
	}
	return st
}

func genPrincipals(s *byteSource) *modelPrincipals {
	if s.intn(5) == 0 {
		return &modelPrincipals{wildcard: true}
	}
	p := &modelPrincipals{}
	if n := s.intn(3); n > 0 {
		p.aws = pickSome(s, genAWSPrincipals, n)
	}
	if s.intn(3) == 0 {
		p.service = []string{pick(s, genServices)}
	}
	if p.aws == nil && p.service == nil {
		p.aws = []string{pick(s, genAWSPrincipals)}
	}
	return p
}

func genCondition(s *byteSource) modelCondition {
	op := pick(s, genOperators)
	c := modelCondition{op: op.name}
	if op.typ != "null" {
		switch s.intn(5) {
		case 0:
			c.op = "ForAnyValue:" + c.op
		case 1:
			c.op = "ForAllValues:" + c.op
		}
		if s.intn(4) == 0 {
			c.op += "IfExists"
		}
	}
	// Mostly a key of the operator's type; sometimes any key, to compare
	// values that do not parse.
	var key string
	for i := 0; i < 3 && key == ""; i++ {
		k := pick(s, genKeys)
		if k.typ == op.typ || op.typ == "null" || i == 2 || s.intn(4) == 0 {
			key = k.name
		}
	}
	if s.intn(6) == 0 {
		key = strings.ToUpper(key)
	}
	c.key = key
	c.values = pickSome(s, genPolicyValues[op.typ], 2)
	return c
}

func genRequest(s *byteSource) *Request {
	r := &Request{
		Principal: pick(s, reqPrincipals),
		Action:    pick(s, reqActions),
		Resource:  pick(s, reqResources),
		Context:   map[string][]string{},
	}
	for _, k := range genKeys {
		if s.intn(3) == 0 {
			continue
		}
		name := k.name
		if s.intn(6) == 0 {
			name = strings.ToUpper(name)
		}
		r.Context[name] = append(r.Context[name], pickSome(s, k.values, 2)...)
	}
	return r
}

// document renders the model as JSON, choosing between a string and a list,
// and between a string and a JSON boolean or number, from the byte source.
func (m *modelPolicy) document(s *byteSource) []byte {
	list := func(xs []string) any {
		if len(xs) == 1 && s.intn(2) == 0 {
			return xs[0]
		}
		return xs
	}
	principals := func(p *modelPrincipals) any {
		if p.wildcard {
			return "*"
		}
		out := map[string]any{}
		if p.aws != nil {
			out["AWS"] = list(p.aws)
		}
		if p.service != nil {
			out["Service"] = list(p.service)
		}
		return out
	}
	scalar := func(v string) any {
		if s.intn(3) == 0 {
			switch v {
			case "true":
				return true
			case "false":
				return false
			}
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				return json.Number(v)
			}
		}
		return v
	}
	var stmts []any
	for _, st := range m.stmts {
		o := map[string]any{"Effect": st.effect}
		if st.principal != nil {
			o["Principal"] = principals(st.principal)
		}
		if st.notPrincipal != nil {
			o["NotPrincipal"] = principals(st.notPrincipal)
		}
		for _, e := range []struct {
			name string
			v    []string
		}{{"Action", st.action}, {"NotAction", st.notAction}, {"Resource", st.resource}, {"NotResource", st.notResource}} {
			if e.v != nil {
				o[e.name] = list(e.v)
			}
		}
		if len(st.conds) > 0 {
			cond := map[string]map[string]any{}
			for _, c := range st.conds {
				if cond[c.op] == nil {
					cond[c.op] = map[string]any{}
				}
				if len(c.values) == 1 && s.intn(2) == 0 {
					cond[c.op][c.key] = scalar(c.values[0])
				} else {
					vals := make([]any, len(c.values))
					for i, v := range c.values {
						vals[i] = scalar(v)
					}
					cond[c.op][c.key] = vals
				}
			}
			o["Condition"] = cond
		}
		stmts = append(stmts, o)
	}
	doc := map[string]any{"Statement": stmts}
	if len(stmts) == 1 && s.intn(2) == 0 {
		doc["Statement"] = stmts[0]
	}
	if m.version != "" {
		doc["Version"] = m.version
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// oracle decides the model plainly: every applicable statement is noted,
// then an explicit deny overrides an allow.
func oracle(m *modelPolicy, r *Request) Decision {
	vars := m.version == Version2012
	allowed, denied := false, false
	for _, st := range m.stmts {
		if m.kind != Identity {
			if st.principal != nil && !oraclePrincipal(st.principal, r.Principal) {
				continue
			}
			if st.notPrincipal != nil && oraclePrincipal(st.notPrincipal, r.Principal) {
				continue
			}
		}
		if st.action != nil && !oracleAnyMatch(st.action, r.Action, true, false, nil) {
			continue
		}
		if st.notAction != nil && oracleAnyMatch(st.notAction, r.Action, true, false, nil) {
			continue
		}
		if st.resource != nil && !oracleAnyMatch(st.resource, r.Resource, false, vars, r.Context) {
			continue
		}
		if st.notResource != nil && oracleAnyMatch(st.notResource, r.Resource, false, vars, r.Context) {
			continue
		}
		allHold := true
		for _, c := range st.conds {
			if !oracleCondition(c, r.Context, vars) {
				allHold = false
			}
		}
		if !allHold {
			continue
		}
		if st.effect == "Deny" {
			denied = true
		} else {
			allowed = true
		}
	}
	switch {
	case denied:
		return Deny
	case allowed:
		return Allow
	}
	return NotApplicable
}

func oraclePrincipal(ps *modelPrincipals, p *Principal) bool {
	if ps.wildcard {
		return true
	}
	for _, a := range ps.aws {
		if a == "*" {
			return true
		}
		if p == nil {
			continue
		}
		parts := strings.Split(a, ":")
		switch {
		case len(parts) == 1: // an account ID
			if p.Account == a {
				return true
			}
		case parts[5] == "root":
			if p.Account == parts[4] {
				return true
			}
		case strings.HasPrefix(parts[5], "role/"):
			if p.RoleARN == a || p.ARN == a {
				return true
			}
		default:
			if p.ARN == a {
				return true
			}
		}
	}
	for _, svc := range ps.service {
		if p != nil && p.Service == svc {
			return true
		}
	}
	return false
}

var variableRE = regexp.MustCompile(`\$\{([^}]*)\}`)

// oracleRegexp turns a policy string into an anchored regular expression:
// with wild, '*' is ".*" and '?' is "."; with vars, each ${...} is replaced
// by its value, quoted. It reports false when a variable has no value.
func oracleRegexp(s string, wild, vars bool, ctx map[string][]string) (string, bool) {
	var b strings.Builder
	literal := func(t string) {
		for _, r := range t {
			switch {
			case wild && r == '*':
				b.WriteString(".*")
			case wild && r == '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
	}
	rest := s
	for vars {
		loc := variableRE.FindStringSubmatchIndex(rest)
		if loc == nil {
			break
		}
		literal(rest[:loc[0]])
		val, ok := oracleVariable(rest[loc[2]:loc[3]], ctx)
		if !ok {
			return "", false
		}
		b.WriteString(regexp.QuoteMeta(val))
		rest = rest[loc[1]:]
	}
	literal(rest)
	return "^" + b.String() + "$", true
}

func oracleVariable(inner string, ctx map[string][]string) (string, bool) {
	name, def, hasDef := inner, "", false
	if i := strings.Index(inner, ","); i >= 0 {
		name = inner[:i]
		d := strings.TrimSpace(inner[i+1:])
		def, hasDef = strings.Trim(d, "'"), true
	}
	name = strings.TrimSpace(name)
	if name == "*" || name == "?" || name == "$" {
		return name, true
	}
	vals := oracleLookup(ctx, name)
	if len(vals) == 1 {
		return vals[0], true
	}
	return def, hasDef
}

func oracleLookup(ctx map[string][]string, key string) []string {
	var out []string
	for k, v := range ctx {
		if strings.EqualFold(k, key) {
			out = append(out, v...)
		}
	}
	return out
}

func oracleMatch(pattern, s string, wild, fold, vars bool, ctx map[string][]string) bool {
	re, ok := oracleRegexp(pattern, wild, vars, ctx)
	if !ok {
		return false
	}
	flags := "(?s)"
	if fold {
		flags = "(?si)"
	}
	return regexp.MustCompile(flags + re).MatchString(s)
}

// oracleAnyMatch matches actions (case-insensitively, without variables)
// or resources (case-sensitively, with variables).
func oracleAnyMatch(patterns []string, s string, action, vars bool, ctx map[string][]string) bool {
	for _, p := range patterns {
		if oracleMatch(p, s, true, action, vars, ctx) {
			return true
		}
	}
	return false
}

func oracleCondition(c modelCondition, ctx map[string][]string, vars bool) bool {
	op := c.op
	set := ""
	for _, prefix := range []string{"ForAnyValue:", "ForAllValues:"} {
		if strings.HasPrefix(op, prefix) {
			set, op = prefix, op[len(prefix):]
		}
	}
	ifExists := strings.HasSuffix(op, "IfExists")
	op = strings.TrimSuffix(op, "IfExists")
	negated := op == "StringNotEquals" || op == "StringNotEqualsIgnoreCase" || op == "StringNotLike" ||
		op == "NumericNotEquals" || op == "NotIpAddress" || op == "ArnNotEquals" || op == "DateNotEquals"
	got := oracleLookup(ctx, c.key)

	if op == "Null" {
		for _, v := range c.values {
			if v == "true" && len(got) == 0 || v == "false" && len(got) > 0 {
				return true
			}
		}
		return false
	}
	if len(got) == 0 {
		if ifExists || set == "ForAllValues:" {
			return true
		}
		if set == "ForAnyValue:" {
			return false
		}
		return negated
	}
	// matchesSome is the positive comparison of one context value against
	// the policy values.
	matchesSome := func(g string) bool {
		for _, v := range c.values {
			if oracleCompare(op, g, v, vars, ctx) {
				return true
			}
		}
		return false
	}
	switch set {
	case "ForAnyValue:":
		for _, g := range got {
			if matchesSome(g) != negated {
				return true
			}
		}
		return false
	case "ForAllValues:":
		for _, g := range got {
			if matchesSome(g) == negated {
				return false
			}
		}
		return true
	}
	any := false
	for _, g := range got {
		if matchesSome(g) {
			any = true
		}
	}
	return any != negated
}

func oracleCompare(op, got, want string, vars bool, ctx map[string][]string) bool {
	switch op {
	case "StringEquals", "StringNotEquals":
		return oracleMatch(want, got, false, false, vars, ctx)
	case "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase":
		return oracleMatch(want, got, false, true, vars, ctx)
	case "StringLike", "StringNotLike":
		return oracleMatch(want, got, true, false, vars, ctx)
	case "Bool":
		return strings.EqualFold(got, want)
	case "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericGreaterThanEquals":
		g, err1 := strconv.ParseFloat(got, 64)
		w, err2 := strconv.ParseFloat(want, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		switch op {
		case "NumericLessThan":
			return g < w
		case "NumericGreaterThanEquals":
			return g >= w
		}
		return g == w
	case "IpAddress", "NotIpAddress":
		ip := net.ParseIP(got)
		if ip == nil {
			return false
		}
		if _, n, err := net.ParseCIDR(want); err == nil {
			return n.Contains(ip)
		}
		return net.ParseIP(want).Equal(ip)
	case "DateLessThan", "DateEquals", "DateGreaterThan":
		g, ok1 := oracleTime(got)
		w, ok2 := oracleTime(want)
		if !ok1 || !ok2 {
			return false
		}
		switch op {
		case "DateLessThan":
			return g.Before(w)
		case "DateGreaterThan":
			return g.After(w)
		}
		return g.Equal(w)
	case "ArnLike", "ArnNotEquals":
		wp := strings.Split(want, ":")
		if len(wp) < 6 {
			return oracleMatch(want, got, true, false, vars, ctx)
		}
		wp = strings.SplitN(want, ":", 6)
		gp := strings.SplitN(got, ":", 6)
		if len(gp) != 6 {
			return false
		}
		for i := range wp {
			if !oracleMatch(wp[i], gp[i], true, false, vars, ctx) {
				return false
			}
		}
		return true
	}
	panic("oracle has no operator " + op)
}

// oracleTime reads epoch seconds (digits only: "-3" is no date) or RFC 3339.
func oracleTime(s string) (time.Time, bool) {
	if regexp.MustCompile(`^[0-9]+$`).MatchString(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		return time.Unix(n, 0), err == nil
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// checkAgainstOracle builds a policy and a request from data and compares
// Evaluate with the oracle.
func checkAgainstOracle(t *testing.T, data []byte) {
	s := &byteSource{b: data}
	m := genPolicy(s)
	doc := m.document(s)
	r := genRequest(s)
	p, err := Parse(doc, m.kind)
	if err != nil {
		t.Fatalf("generated document refused: %v\n%s", err, doc)
	}
	got, want := p.Evaluate(r), oracle(m, r)
	if got != want {
		t.Fatalf("Evaluate = %v, oracle = %v\nkind %v document %s\nrequest %+v principal %+v",
			got, want, m.kind, doc, r, r.Principal)
	}
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 1, 1, 0, 0, 0, 2, 1, 3, 0, 5, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte("policy evaluation against a plain oracle, seeded with some text"))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 64 {
		b := make([]byte, 48+rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(checkAgainstOracle)
}

// TestEvaluateAgainstOracle runs many generated cases in every test run,
// beyond the fuzz seeds.
func TestEvaluateAgainstOracle(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range n {
		b := make([]byte, 32+rng.IntN(96))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		checkAgainstOracle(t, b)
	}
}
