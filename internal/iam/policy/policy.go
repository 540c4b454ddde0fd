// Package policy parses AWS IAM policy documents (identity policies, resource
// policies such as bucket policies, and role trust policies) and evaluates one
// document against a request, as AWS's policy evaluation logic defines it.
//
// ParseBucket adds the checks S3 makes of a bucket policy before storing
// it: resources within the bucket, S3 actions, each applying to one of its
// statement's resources, and S3's wording of every refusal.
//
// The package decides one document at a time; combining an identity policy, a
// bucket policy and account ownership into a final answer is the caller's
// work. Evaluate is pure: the caller puts everything a condition or a policy
// variable may ask about (aws:username, aws:SourceIp, aws:CurrentTime, ...)
// into Request.Context.
//
// Where AWS's documentation leaves a case open, this package chooses as
// follows (and the tests pin each choice):
//
//   - A missing condition key makes a positive operator false and a negated
//     one (StringNotEquals, StringNotLike, ArnNotEquals, ArnNotLike,
//     NumericNotEquals, DateNotEquals, NotIpAddress) true, as the condition
//     operator reference says. ...IfExists makes any missing key true;
//     ForAllValues is true on a missing key and ForAnyValue false, whatever
//     the operator. A key present with no values counts as missing.
//   - A plain negated operator is the negation of its positive form: with
//     several context values it holds only when none of them matches any
//     policy value. ForAnyValue:/ForAllValues: apply the negated comparison
//     to each context value instead.
//   - A context value that does not parse as the operator's type (a number
//     for Numeric*, a date, an IP address) matches no policy value, so
//     positive operators are false for it and negated ones true.
//   - A policy variable with no value, or whose key has several values, makes
//     the entry holding it match nothing: a Resource entry never matches and
//     a NotResource entry never excludes; a condition value never matches
//     (so a negated operator with only such values holds).
//   - A role ARN in Principal matches the role and every session of it; an
//     account matches every principal of the account; NotPrincipal excludes
//     a principal when any entry would match it under those same rules.
//     Federated matches a Principal whose ARN is the identity provider (its
//     ARN or name); CanonicalUser never matches, since Request carries no
//     canonical IDs. {"AWS": "*"} means everyone, like "*".
//   - NotPrincipal must go with Deny and is refused in trust policies, as the
//     NotPrincipal reference says; trust policies refuse Resource and
//     NotResource and accept only sts: actions, as IAM does.
//   - A bucket policy's resource is valid when, its policy variables standing
//     for anything, it can match the bucket's ARN or the ARN of an object of
//     the bucket (a key of one character or more); "*" alone is refused, as
//     S3 refuses it.
package policy

import (
	"errors"
	"fmt"
)

// MaxSize is the largest document Parse accepts, in bytes: S3's limit for a
// bucket policy. IAM's own limits for identity and trust policies are lower
// and are the caller's to enforce.
const MaxSize = 20480

// The policy language versions. A document without Version is read as
// Version2008, which has no policy variables.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// Kind says where a document is attached, which decides what it may contain.
type Kind int

const (
	// Identity is a user's or role's inline or managed policy: Principal and
	// NotPrincipal are forbidden.
	Identity Kind = iota
	// Resource is a policy on a resource, such as a bucket policy or a vault
	// access policy: Principal or NotPrincipal is required.
	Resource
	// Trust is a role's trust policy: Principal is required, Resource is
	// forbidden and actions are sts: actions such as sts:AssumeRole.
	Trust
)

func (k Kind) String() string {
	switch k {
	case Identity:
		return "identity"
	case Resource:
		return "resource"
	case Trust:
		return "trust"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("malformed policy document")

// MalformedError is the error Parse returns. Message is in AWS's words, for
// the MalformedPolicyDocument (IAM) or MalformedPolicy (S3) response; Detail
// says where the problem is, for logs and for people.
type MalformedError struct {
	Message string
	Detail  string
}

func (e *MalformedError) Error() string {
	if e.Detail == "" {
		return ErrMalformed.Error() + ": " + e.Message
	}
	return ErrMalformed.Error() + ": " + e.Message + " (" + e.Detail + ")"
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(msg, detailFormat string, args ...any) error {
	return &MalformedError{Message: msg, Detail: fmt.Sprintf(detailFormat, args...)}
}

// Policy is a parsed document. Build it with Parse; Evaluate relies on the
// validation Parse does. Evaluate does not modify the Policy, so one Policy
// may be evaluated from many goroutines at once.
type Policy struct {
	Version    string // "" when the document has none
	ID         string
	Statements []Statement

	kind Kind
	raw  []byte
}

// Statement is one element of the document's Statement list. Every list-like
// element holds the strings as written; JSON true/false and numbers in
// condition values are held as their text.
type Statement struct {
	Sid    string
	Effect string // "Allow" or "Deny"
	// Principal and NotPrincipal are nil when absent.
	Principal, NotPrincipal *Principals
	// Exactly one of Action and NotAction is set. For Identity and Resource
	// kinds exactly one of Resource and NotResource is set; Trust policies
	// have neither.
	Action, NotAction, Resource, NotResource []string
	// Conditions holds one entry per operator and key, in document order.
	Conditions []Condition
}

// Principals is a Principal or NotPrincipal element: "*" sets Wildcard, an
// object fills the lists by principal type.
type Principals struct {
	Wildcard      bool
	AWS           []string
	Service       []string
	Federated     []string
	CanonicalUser []string
}

// Condition is one key under one operator of a Condition element, such as
// Operator "ForAnyValue:StringLikeIfExists", Key "aws:TagKeys".
type Condition struct {
	Operator string
	Key      string
	Values   []string
}

// Kind returns the kind the document was parsed as.
func (p *Policy) Kind() Kind { return p.kind }

// JSON returns the document exactly as it was given to Parse, for
// GetPolicy-style calls. The caller may keep and modify the slice.
func (p *Policy) JSON() []byte {
	return append([]byte(nil), p.raw...)
}

// variables reports whether the document's version has policy variables.
func (p *Policy) variables() bool { return p.Version == Version2012 }
