package policy

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// valueType is what an operator compares.
type valueType int

const (
	typeString valueType = iota
	typeStringFold
	typeStringLike
	typeNumeric
	typeDate
	typeBool
	typeIP
	typeARN
	typeBinary
	typeNull
)

// variables reports whether policy variables may appear in the type's
// values, as the condition operator reference lists.
func (t valueType) variables() bool {
	switch t {
	case typeString, typeStringFold, typeStringLike, typeBool, typeARN:
		return true
	}
	return false
}

type comparison int

const (
	cmpEq comparison = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

func (c comparison) holds(order int) bool {
	switch c {
	case cmpLt:
		return order < 0
	case cmpLe:
		return order <= 0
	case cmpGt:
		return order > 0
	case cmpGe:
		return order >= 0
	}
	return order == 0
}

// baseOperator is an operator without its ForAnyValue:/ForAllValues: prefix
// and IfExists suffix. A negated operator is its positive form's negation.
type baseOperator struct {
	typ     valueType
	cmp     comparison
	negated bool
}

var baseOperators = map[string]baseOperator{
	"StringEquals":              {typ: typeString},
	"StringNotEquals":           {typ: typeString, negated: true},
	"StringEqualsIgnoreCase":    {typ: typeStringFold},
	"StringNotEqualsIgnoreCase": {typ: typeStringFold, negated: true},
	"StringLike":                {typ: typeStringLike},
	"StringNotLike":             {typ: typeStringLike, negated: true},
	"NumericEquals":             {typ: typeNumeric},
	"NumericNotEquals":          {typ: typeNumeric, negated: true},
	"NumericLessThan":           {typ: typeNumeric, cmp: cmpLt},
	"NumericLessThanEquals":     {typ: typeNumeric, cmp: cmpLe},
	"NumericGreaterThan":        {typ: typeNumeric, cmp: cmpGt},
	"NumericGreaterThanEquals":  {typ: typeNumeric, cmp: cmpGe},
	"DateEquals":                {typ: typeDate},
	"DateNotEquals":             {typ: typeDate, negated: true},
	"DateLessThan":              {typ: typeDate, cmp: cmpLt},
	"DateLessThanEquals":        {typ: typeDate, cmp: cmpLe},
	"DateGreaterThan":           {typ: typeDate, cmp: cmpGt},
	"DateGreaterThanEquals":     {typ: typeDate, cmp: cmpGe},
	"Bool":                      {typ: typeBool},
	"BinaryEquals":              {typ: typeBinary},
	"IpAddress":                 {typ: typeIP},
	"NotIpAddress":              {typ: typeIP, negated: true},
	// ArnEquals and ArnLike are the same comparison in AWS: both take
	// wildcards.
	"ArnEquals":    {typ: typeARN},
	"ArnLike":      {typ: typeARN},
	"ArnNotEquals": {typ: typeARN, negated: true},
	"ArnNotLike":   {typ: typeARN, negated: true},
	"Null":         {typ: typeNull},
}

type setQualifier int

const (
	setNone setQualifier = iota
	setAnyValue
	setAllValues
)

type operator struct {
	base     baseOperator
	set      setQualifier
	ifExists bool
}

// parseOperator reads names such as "ForAllValues:StringLikeIfExists".
// Null takes neither a prefix nor IfExists.
func parseOperator(name string) (operator, bool) {
	var op operator
	if rest, ok := strings.CutPrefix(name, "ForAnyValue:"); ok {
		op.set, name = setAnyValue, rest
	} else if rest, ok := strings.CutPrefix(name, "ForAllValues:"); ok {
		op.set, name = setAllValues, rest
	}
	if rest, ok := strings.CutSuffix(name, "IfExists"); ok {
		op.ifExists, name = true, rest
	}
	b, ok := baseOperators[name]
	if !ok || b.typ == typeNull && (op.set != setNone || op.ifExists) {
		return operator{}, false
	}
	op.base = b
	return op, true
}

// parseConditions reads a Condition element: operators, each with keys, each
// with a scalar or a list of scalars.
func parseConditions(v any) ([]Condition, error) {
	ops, ok := v.(*object)
	if !ok {
		return nil, malformed(syntaxMessage, "Condition is a %s, not an object", typeName(v))
	}
	var conds []Condition
	for _, om := range ops.members {
		op, ok := parseOperator(om.key)
		if !ok {
			return nil, malformed(fmt.Sprintf(msgConditionType, om.key), "")
		}
		keys, ok := om.val.(*object)
		if !ok {
			return nil, malformed(syntaxMessage, "condition %s is a %s, not an object", om.key, typeName(om.val))
		}
		for _, km := range keys.members {
			if vendor, _, ok := strings.Cut(km.key, ":"); !ok || vendor == "" {
				return nil, malformed(msgVendor, "condition key %q", km.key)
			}
			values, err := conditionValues(km.val)
			if err != nil {
				return nil, malformed(syntaxMessage, "condition %s %s: %v", om.key, km.key, err)
			}
			for _, s := range values {
				if !validValue(op.base.typ, s) {
					return nil, malformed(syntaxMessage, "condition %s %s: invalid value %q", om.key, km.key, s)
				}
			}
			conds = append(conds, Condition{Operator: om.key, Key: km.key, Values: values})
		}
	}
	return conds, nil
}

func conditionValues(v any) ([]string, error) {
	if s, ok := scalarText(v); ok {
		return []string{s}, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("value is a %s", typeName(v))
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := scalarText(e)
		if !ok {
			return nil, fmt.Errorf("value is a %s", typeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// validValue checks a policy value against its operator's type. Values
// that may hold a policy variable are checked after substitution instead.
func validValue(t valueType, s string) bool {
	switch t {
	case typeNull:
		return strings.EqualFold(s, "true") || strings.EqualFold(s, "false")
	case typeBool:
		return strings.EqualFold(s, "true") || strings.EqualFold(s, "false") || strings.Contains(s, "${")
	case typeNumeric:
		_, ok := parseNumber(s)
		return ok
	case typeDate:
		_, ok := parseDate(s)
		return ok
	case typeIP:
		_, ok := parsePrefix(s)
		return ok
	case typeBinary:
		_, ok := parseBase64(s)
		return ok
	}
	return true
}

var numberSyntax = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// parseNumber reads decimal numbers, refusing what strconv would also take
// but AWS would not: hex, infinities, NaN, underscores.
func parseNumber(s string) (float64, bool) {
	if !numberSyntax.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

var dateLayouts = []string{
	time.RFC3339Nano, // also takes no fraction
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02",
	"2006-01",
}

// parseDate reads the W3C profile of ISO 8601 (a time without zone is UTC)
// and epoch seconds. A bare number is always epoch seconds, never a year.
func parseDate(s string) (time.Time, bool) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(n, 0), true
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parsePrefix reads a CIDR block or a single address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// holds decides the condition against the request context. See the package
// doc for how missing keys and several context values are read.
func (c *Condition) holds(ctx *evalContext, vars bool) bool {
	op, ok := parseOperator(c.Operator)
	if !ok {
		return false
	}
	got := ctx.values(c.Key)
	present := len(got) > 0
	if op.base.typ == typeNull {
		for _, v := range c.Values {
			if strings.EqualFold(v, "true") != present {
				return true
			}
		}
		return false
	}
	if !present {
		// The operator reference: a missing key fails a positive operator
		// and satisfies a negated one; IfExists satisfies either. The set
		// operators reference: ForAllValues holds on a missing key,
		// ForAnyValue does not.
		switch {
		case op.ifExists:
			return true
		case op.set == setAllValues:
			return true
		case op.set == setAnyValue:
			return false
		}
		return op.base.negated
	}
	matchesAny := op.base.matcher(c.Values, ctx, vars && op.base.typ.variables())
	neg := op.base.negated
	switch op.set {
	case setAnyValue:
		for _, g := range got {
			if matchesAny(g) != neg {
				return true
			}
		}
		return false
	case setAllValues:
		for _, g := range got {
			if matchesAny(g) == neg {
				return false
			}
		}
		return true
	}
	for _, g := range got {
		if matchesAny(g) {
			return !neg
		}
	}
	return neg
}

// matcher returns whether a context value matches any of the policy values
// under the operator's positive comparison. Policy values whose variables
// do not resolve, or that do not parse, are left out.
func (b baseOperator) matcher(values []string, ctx *evalContext, vars bool) func(string) bool {
	switch b.typ {
	case typeString, typeStringFold, typeBool:
		fold := b.typ != typeString
		substituted := func(v string) (string, bool) {
			p, ok := compile(v, false, vars, ctx)
			return p.String(), ok
		}
		return typedMatcher(values, substituted, asIs, func(got, want string) bool {
			return got == want || fold && strings.EqualFold(got, want)
		})
	case typeStringLike, typeARN:
		compiled := func(v string) (pattern, bool) { return compile(v, true, vars, ctx) }
		return typedMatcher(values, compiled, asIs, func(got string, want pattern) bool {
			if b.typ == typeARN {
				return want.matchARN(got)
			}
			return want.match(got, false)
		})
	case typeNumeric:
		return typedMatcher(values, parseNumber, parseNumber, func(got, want float64) bool {
			return b.cmp.holds(cmp.Compare(got, want))
		})
	case typeDate:
		return typedMatcher(values, parseDate, parseDate, func(got, want time.Time) bool {
			return b.cmp.holds(got.Compare(want))
		})
	case typeIP:
		return typedMatcher(values, parsePrefix, parseAddr, func(got netip.Addr, want netip.Prefix) bool {
			return want.Contains(got)
		})
	case typeBinary:
		return typedMatcher(values, parseBase64, parseBase64, bytes.Equal)
	}
	return func(string) bool { return false }
}

// typedMatcher parses the policy values once and each context value as it
// comes; values of either side that do not parse match nothing.
func typedMatcher[W, G any](values []string, parseWant func(string) (W, bool), parseGot func(string) (G, bool),
	match func(G, W) bool) func(string) bool {
	want := make([]W, 0, len(values))
	for _, v := range values {
		if w, ok := parseWant(v); ok {
			want = append(want, w)
		}
	}
	return func(got string) bool {
		g, ok := parseGot(got)
		if !ok {
			return false
		}
		for _, w := range want {
			if match(g, w) {
				return true
			}
		}
		return false
	}
}

// parseAddr reads a context address; an IPv4-mapped IPv6 address is its
// IPv4 address, as a client reaching a dual-stack listener appears.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil
}

func asIs(s string) (string, bool) { return s, true }

func parseBase64(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}
