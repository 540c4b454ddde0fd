package policy

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// pattern is a policy string after policy variables are substituted: each
// character is a literal or, where wildcards apply, '*' (any run of
// characters, '/' and ':' included) or '?' (one character). Keeping
// substituted text as literals is what lets ${*} stand for a literal '*' and
// keeps a user name holding '*' from becoming a wildcard.
type pattern []pchar

type pchar struct {
	r    rune
	wild bool // r is '*' or '?' acting as a wildcard
}

// compile turns s into a pattern. wild says whether '*' and '?' are
// wildcards; vars whether ${...} is a policy variable, resolved from ctx.
// It reports false when a variable has no value.
func compile(s string, wild, vars bool, ctx *evalContext) (pattern, bool) {
	p := make(pattern, 0, len(s))
	for i := 0; i < len(s); {
		if vars && strings.HasPrefix(s[i:], "${") {
			if end := strings.IndexByte(s[i+2:], '}'); end >= 0 {
				val, ok := resolveVariable(s[i+2:i+2+end], ctx)
				if !ok {
					return nil, false
				}
				for _, r := range val {
					p = append(p, pchar{r: r})
				}
				i += 2 + end + 1
				continue
			}
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		p = append(p, pchar{r: r, wild: wild && (r == '*' || r == '?')})
		i += size
	}
	return p, true
}

// resolveVariable resolves the inside of ${...}: a context key, optionally
// with a default ("aws:username, 'nobody'", a quote doubled inside it), or
// one of the escapes *, ? and $. A key with no value or several values
// resolves only through its default.
func resolveVariable(inner string, ctx *evalContext) (string, bool) {
	name, def, hasDef, ok := splitDefault(inner)
	if !ok {
		return "", false
	}
	switch name {
	case "*", "?", "$":
		return name, true
	}
	if vals := ctx.values(name); len(vals) == 1 {
		return vals[0], true
	}
	return def, hasDef
}

func splitDefault(inner string) (name, def string, hasDef, ok bool) {
	name, rest, found := strings.Cut(inner, ",")
	name = strings.TrimSpace(name)
	if !found {
		return name, "", false, name != ""
	}
	rest = strings.TrimSpace(rest)
	if len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return "", "", false, false
	}
	return name, strings.ReplaceAll(rest[1:len(rest)-1], "''", "'"), true, name != ""
}

// String is the pattern's text, wildcards and literals alike; for patterns
// compiled without wildcards it is the substituted value.
func (p pattern) String() string {
	var b strings.Builder
	for _, c := range p {
		b.WriteRune(c.r)
	}
	return b.String()
}

// match reports whether the pattern matches all of s; fold compares letters
// case-insensitively, as regexp's (?i) does.
func (p pattern) match(s string, fold bool) bool {
	// Iterative wildcard matching: on a mismatch, retry from the last '*'
	// with one more character swallowed. O(len(p)*len(s)) at worst.
	str := []rune(s)
	pi, si := 0, 0
	star, starS := -1, 0
	for si < len(str) {
		if pi < len(p) {
			c := p[pi]
			switch {
			case c.wild && c.r == '*':
				star, starS = pi, si
				pi++
				continue
			case c.wild && c.r == '?', runeEqual(c.r, str[si], fold):
				pi++
				si++
				continue
			}
		}
		if star < 0 {
			return false
		}
		starS++
		pi, si = star+1, starS
	}
	for pi < len(p) && p[pi].wild && p[pi].r == '*' {
		pi++
	}
	return pi == len(p)
}

func runeEqual(a, b rune, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		return 'A' <= a && a <= 'Z' && a+'a'-'A' == b || 'A' <= b && b <= 'Z' && b+'a'-'A' == a
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// splitARN splits a pattern at its first five literal colons, as an ARN's
// partition, service, region, account and resource are separated.
func (p pattern) splitARN() []pattern {
	var parts []pattern
	start := 0
	for i, c := range p {
		if len(parts) == 5 {
			break
		}
		if !c.wild && c.r == ':' {
			parts = append(parts, p[start:i])
			start = i + 1
		}
	}
	return append(parts, p[start:])
}

// matchARN is ArnLike's comparison: the six colon-separated parts of the
// ARN are matched one by one, so a wildcard in the partition, service,
// region or account does not reach past its colon. A policy value with fewer
// than six parts (such as "*") is matched against the whole ARN.
func (p pattern) matchARN(arn string) bool {
	pp := p.splitARN()
	if len(pp) < 6 {
		return p.match(arn, false)
	}
	ap := strings.SplitN(arn, ":", 6)
	if len(ap) < 6 {
		return false
	}
	for i := range pp {
		if !pp[i].match(ap[i], false) {
			return false
		}
	}
	return true
}
