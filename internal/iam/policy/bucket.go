package policy

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// S3's wording of what is wrong with a bucket policy, in MalformedPolicy
// errors, where it differs from IAM's. A missing Statement, Effect or
// Principal, an invalid principal or Effect and an unknown condition
// operator are worded alike.
const (
	msgS3InvalidJSON     = "This policy contains invalid Json"
	msgS3Version         = "The policy must contain a valid version string"
	msgS3EmptyStatement  = "Could not parse the policy: Statement is empty!"
	msgS3MissingElement  = "Statement is missing required element"
	msgS3InvalidAction   = "Policy has invalid action"
	msgS3InvalidResource = "Policy has invalid resource"
	msgS3ActionResource  = "Action does not apply to any resource(s) in statement"
)

// s3ARN is the prefix of every resource a bucket policy may name.
const s3ARN = "arn:aws:s3:::"

// ParseBucket parses and validates a bucket policy for bucket as S3 does
// before it stores one. On top of Parse's checks for the Resource kind:
//
//   - every Resource and NotResource entry is an S3 ARN that can match the
//     bucket's ARN or an object's in it: arn:aws:s3:::bucket,
//     arn:aws:s3:::bucket/*, and wildcards or policy variables that reach
//     either (arn:aws:s3:::buck*, arn:aws:s3:::*/logs/*, arn:aws:s3:::*);
//     "*", another service's ARN and one that can only match other buckets
//     are refused;
//   - every Action and NotAction entry is "*" or names at least one S3
//     action (s3:GetObject, s3:Get*, s3:*), matched without regard to case;
//   - each action of Action applies to a resource of Resource: an object
//     action to an object ARN, a bucket action to the bucket's ARN;
//     statements with NotAction or NotResource are not checked for this.
//
// Errors are *MalformedError in S3's words. The policy is of kind Resource,
// and evaluates as one.
func ParseBucket(doc []byte, bucket string) (*Policy, error) {
	if bucket == "" {
		return nil, errors.New("parse bucket policy: no bucket")
	}
	return parse(doc, &dialect{kind: Resource, bucket: bucket})
}

// checkS3Action accepts "*" and s3:NAME where NAME, wildcards and all,
// matches at least one S3 action.
func checkS3Action(a string, d *dialect) error {
	if d.s3ActionTargets(a) == 0 {
		return malformed(msgS3InvalidAction, "action %q names no S3 action", a)
	}
	return nil
}

// s3ActionTargets returns what the S3 actions a matches apply to; 0 means
// it matches none. Each entry is matched against the table once per
// document.
func (d *dialect) s3ActionTargets(a string) target {
	if on, ok := d.actions[a]; ok {
		return on
	}
	on := s3ActionTargets(a)
	if d.actions == nil {
		d.actions = map[string]target{}
	}
	d.actions[a] = on
	return on
}

func s3ActionTargets(a string) target {
	if a == "*" {
		return onBucket | onObject
	}
	vendor, name, ok := strings.Cut(a, ":")
	if !ok || !strings.EqualFold(vendor, "s3") || strings.Contains(name, ":") {
		return 0
	}
	p, _ := compile(name, true, false, nil)
	// A name shorter than the pattern's characters other than '*' cannot
	// match it; this keeps a long pattern from costing a long match for
	// every name of the table.
	need := 0
	for _, c := range p {
		if !c.wild || c.r != '*' {
			need++
		}
	}
	var on target
	for _, act := range s3Actions {
		if len(act.name) >= need && p.match(act.name, true) {
			on |= act.on
		}
	}
	return on
}

// checkBucketResource accepts an S3 ARN that can match the bucket's ARN or
// the ARN of an object in it.
func checkBucketResource(r string, d *dialect) error {
	if on := resourceTargets(r, d); on == 0 {
		return malformed(msgS3InvalidResource, "resource %q can match neither bucket %s nor its objects", r, d.bucket)
	}
	return nil
}

// resourceTargets says whether a Resource entry can match the bucket's ARN,
// and whether it can match an object's.
func resourceTargets(r string, d *dialect) target {
	if !strings.HasPrefix(r, s3ARN) {
		return 0
	}
	p := resourcePattern(r, d.vars)
	var on target
	if p.match(s3ARN+d.bucket, false) {
		on |= onBucket
	}
	if p.matchesSomeWithPrefix(s3ARN + d.bucket + "/") {
		on |= onObject
	}
	return on
}

// checkBucketStatement refuses a statement with an action that applies to
// none of its resources.
func checkBucketStatement(st *Statement, d *dialect) error {
	if st.Action == nil || st.Resource == nil {
		return nil
	}
	var resources target
	for _, r := range st.Resource {
		resources |= resourceTargets(r, d)
	}
	for _, a := range st.Action {
		if d.s3ActionTargets(a)&resources == 0 {
			return malformed(msgS3ActionResource, "action %q applies to none of %q", a, st.Resource)
		}
	}
	return nil
}

// resourcePattern is a Resource entry as a wildcard pattern in which each
// policy variable may stand for anything: which value it takes is known
// only when a request is evaluated.
func resourcePattern(r string, vars bool) pattern {
	p := make(pattern, 0, len(r))
	for i := 0; i < len(r); {
		if vars && strings.HasPrefix(r[i:], "${") {
			if end := strings.IndexByte(r[i+2:], '}'); end >= 0 {
				switch inner := r[i+2 : i+2+end]; inner {
				case "*", "?", "$":
					p = append(p, pchar{r: rune(inner[0])})
				default:
					p = append(p, pchar{r: '*', wild: true})
				}
				i += 2 + end + 1
				continue
			}
		}
		c, size := utf8.DecodeRuneInString(r[i:])
		p = append(p, pchar{r: c, wild: c == '*' || c == '?'})
		i += size
	}
	return p
}

// matchesSomeWithPrefix reports whether the pattern matches at least one
// string that begins with prefix and goes on after it: an object's ARN is
// its bucket's, a slash and a key of one character or more. It follows
// every way the pattern can consume the prefix; a part of the pattern left
// over then matches some non-empty string, since a literal, '?' and '*'
// each match one character.
func (p pattern) matchesSomeWithPrefix(prefix string) bool {
	at := make([]bool, len(p)+1) // pattern positions reachable so far
	closure := func(at []bool) {
		for i := 0; i < len(p); i++ {
			if at[i] && p[i].wild && p[i].r == '*' {
				at[i+1] = true // '*' matching nothing
			}
		}
	}
	at[0] = true
	closure(at)
	for _, c := range prefix {
		next := make([]bool, len(p)+1)
		for i := 0; i < len(p); i++ {
			if !at[i] {
				continue
			}
			switch pc := p[i]; {
			case pc.wild && pc.r == '*':
				next[i] = true
			case pc.wild && pc.r == '?', pc.r == c:
				next[i+1] = true
			}
		}
		closure(next)
		at = next
	}
	for i := 0; i < len(p); i++ {
		if at[i] {
			return true
		}
	}
	return false
}
