package policy

import (
	"errors"
	"fmt"
	"strings"
)

// AWS's wording for what is wrong with a document, as IAM and S3 return it
// in MalformedPolicyDocument and MalformedPolicy errors.
const (
	msgTooLarge           = "Policy document exceeds the maximum size of 20480 bytes."
	msgPrincipalForbidden = "Policy document should not specify a principal."
	msgMissingPrincipal   = "Missing required field Principal"
	msgInvalidPrincipal   = "Invalid principal in policy"
	msgMissingStatement   = "Missing required field Statement"
	msgMissingEffect      = "Missing required field Effect"
	msgNoActions          = "Policy statement must contain actions."
	msgNoResources        = "Policy statement must contain resources."
	msgVendor             = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
	msgOneColon           = "Actions/Condition can contain only one colon."
	msgTrustAction        = "AssumeRole policy may only specify STS AssumeRole actions."
	msgSidChars           = "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*"
	msgSidUnique          = "Statement IDs (SID) in a single policy must be unique."
	msgNotPrincipalAllow  = "NotPrincipal may only be used with Effect Deny."
	msgResourceFormat     = `Resource %s must be in ARN format or "*".`
	msgConditionType      = "Invalid Condition type : %s"
)

// Parse parses and validates a policy document of the given kind. Errors
// about the document are *MalformedError, wrapping ErrMalformed.
func Parse(doc []byte, kind Kind) (*Policy, error) {
	if kind != Identity && kind != Resource && kind != Trust {
		return nil, fmt.Errorf("parse policy: unknown kind %v", kind)
	}
	return parse(doc, &dialect{kind: kind})
}

// dialect is what a document is checked for: its kind and, for an S3
// bucket policy, the bucket it is put on, for which S3 checks more than IAM
// does and words its refusals its own way (bucket.go).
type dialect struct {
	kind   Kind
	bucket string // "" but for a bucket policy
	// vars says whether the document's version has policy variables; it is
	// known once the top level is read.
	vars bool
	// actions caches what each action entry of a bucket policy names.
	actions map[string]target
}

func (d *dialect) s3() bool { return d.bucket != "" }

// msg is IAM's wording, or S3's for a bucket policy.
func (d *dialect) msg(iam, s3 string) string {
	if d.s3() {
		return s3
	}
	return iam
}

func parse(doc []byte, d *dialect) (*Policy, error) {
	if len(doc) > MaxSize {
		return nil, malformed(msgTooLarge, "document is %d bytes", len(doc))
	}
	tree, err := decodeJSON(doc)
	if err != nil {
		var me *MalformedError
		if d.s3() && errors.As(err, &me) {
			me.Message = msgS3InvalidJSON
		}
		return nil, err
	}
	top, ok := tree.(*object)
	if !ok {
		return nil, malformed(d.msg(syntaxMessage, msgS3InvalidJSON), "document is a JSON %s, not an object", typeName(tree))
	}
	p := &Policy{kind: d.kind, raw: append([]byte(nil), doc...)}
	var stmts any
	haveStatement := false
	for _, m := range top.members {
		switch m.key {
		case "Version":
			v, ok := m.val.(string)
			if !ok || (v != Version2012 && v != Version2008) {
				return nil, malformed(d.msg(syntaxMessage, msgS3Version), "Version must be %q or %q", Version2012, Version2008)
			}
			p.Version = v
		case "Id":
			v, ok := m.val.(string)
			if !ok {
				return nil, malformed(syntaxMessage, "Id is a %s, not a string", typeName(m.val))
			}
			p.ID = v
		case "Statement":
			stmts, haveStatement = m.val, true
		default:
			return nil, malformed(syntaxMessage, "unknown element %q", m.key)
		}
	}
	if !haveStatement {
		return nil, malformed(msgMissingStatement, "")
	}
	var list []any
	switch t := stmts.(type) {
	case *object:
		list = []any{t}
	case []any:
		list = t
	default:
		return nil, malformed(syntaxMessage, "Statement is a %s", typeName(stmts))
	}
	if len(list) == 0 {
		return nil, malformed(d.msg(msgMissingStatement, msgS3EmptyStatement), "Statement is empty")
	}
	d.vars = p.Version == Version2012
	sids := map[string]bool{}
	for i, e := range list {
		obj, ok := e.(*object)
		if !ok {
			return nil, malformed(syntaxMessage, "statement %d is a %s, not an object", i, typeName(e))
		}
		st, err := parseStatement(obj, d)
		if err != nil {
			var me *MalformedError
			if errors.As(err, &me) {
				me.Detail = joinDetail(fmt.Sprintf("statement %d", i), me.Detail)
			}
			return nil, err
		}
		if st.Sid != "" {
			if sids[st.Sid] {
				return nil, malformed(msgSidUnique, "statement %d: Sid %q repeats", i, st.Sid)
			}
			sids[st.Sid] = true
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func joinDetail(where, detail string) string {
	if detail == "" {
		return where
	}
	return where + ": " + detail
}

// elements records which elements a statement has, since an element given as
// an empty list is not the same as a missing one.
type elements struct {
	effect, principal, notPrincipal, action, notAction, resource, notResource bool
}

func parseStatement(obj *object, d *dialect) (Statement, error) {
	kind := d.kind
	var st Statement
	var has elements
	for _, m := range obj.members {
		var err error
		switch m.key {
		case "Sid":
			s, ok := m.val.(string)
			if !ok {
				return st, malformed(syntaxMessage, "Sid is a %s, not a string", typeName(m.val))
			}
			// Bucket policies take any Sid; IAM's own documents take letters
			// and digits only.
			if kind != Resource && !isAlnum(s) {
				return st, malformed(msgSidChars, "Sid %q", s)
			}
			st.Sid = s
		case "Effect":
			s, ok := m.val.(string)
			if !ok {
				return st, malformed(syntaxMessage, "Effect is a %s, not a string", typeName(m.val))
			}
			if s != "Allow" && s != "Deny" {
				return st, malformed("Invalid effect: "+s, "")
			}
			st.Effect, has.effect = s, true
		case "Principal":
			st.Principal, err = parsePrincipals(m.val)
			has.principal = true
		case "NotPrincipal":
			st.NotPrincipal, err = parsePrincipals(m.val)
			has.notPrincipal = true
		case "Action":
			st.Action, err = parseActions(m.key, m.val, d)
			has.action = true
		case "NotAction":
			st.NotAction, err = parseActions(m.key, m.val, d)
			has.notAction = true
		case "Resource":
			st.Resource, err = parseResources(m.key, m.val, d)
			has.resource = true
		case "NotResource":
			st.NotResource, err = parseResources(m.key, m.val, d)
			has.notResource = true
		case "Condition":
			st.Conditions, err = parseConditions(m.val)
		default:
			return st, malformed(syntaxMessage, "unknown element %q", m.key)
		}
		if err != nil {
			return st, err
		}
	}
	if !has.effect {
		return st, malformed(msgMissingEffect, "")
	}
	if err := checkPrincipalElements(st, has, kind); err != nil {
		return st, err
	}
	switch {
	case has.action && has.notAction:
		return st, malformed(syntaxMessage, "both Action and NotAction")
	case !has.action && !has.notAction:
		return st, malformed(d.msg(msgNoActions, msgS3MissingElement), "no Action or NotAction")
	}
	switch {
	case has.resource && has.notResource:
		return st, malformed(syntaxMessage, "both Resource and NotResource")
	case !has.resource && !has.notResource && kind != Trust:
		return st, malformed(d.msg(msgNoResources, msgS3MissingElement), "no Resource or NotResource")
	}
	if d.s3() {
		if err := checkBucketStatement(&st, d); err != nil {
			return st, err
		}
	}
	return st, nil
}

func checkPrincipalElements(st Statement, has elements, kind Kind) error {
	switch kind {
	case Identity:
		if has.principal || has.notPrincipal {
			return malformed(msgPrincipalForbidden, "")
		}
		return nil
	case Trust:
		if has.notPrincipal {
			return malformed("Has prohibited field NotPrincipal", "")
		}
	}
	switch {
	case has.principal && has.notPrincipal:
		return malformed(syntaxMessage, "both Principal and NotPrincipal")
	case !has.principal && !has.notPrincipal:
		return malformed(msgMissingPrincipal, "")
	case has.notPrincipal && st.Effect != "Deny":
		// An Allow with NotPrincipal grants everyone else, anonymous users
		// included; AWS does not support it.
		return malformed(msgNotPrincipalAllow, "")
	}
	return nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func parseActions(elem string, v any, d *dialect) ([]string, error) {
	list, ok := stringList(v)
	if !ok {
		return nil, malformed(d.msg(syntaxMessage, msgS3InvalidAction), "%s is a %s, not a string or a list of strings", elem, typeName(v))
	}
	if len(list) == 0 {
		return nil, malformed(d.msg(msgNoActions, msgS3InvalidAction), "%s is empty", elem)
	}
	for _, a := range list {
		var err error
		if d.s3() {
			err = checkS3Action(a, d)
		} else {
			err = checkAction(a, d.kind)
		}
		if err != nil {
			return nil, err
		}
	}
	return list, nil
}

// checkAction accepts "*" and "vendor:name" where both parts are letters,
// digits, '-', '_', '.' and the wildcards.
func checkAction(a string, kind Kind) error {
	if a == "*" {
		if kind == Trust {
			return malformed(msgTrustAction, "action %q", a)
		}
		return nil
	}
	vendor, name, ok := strings.Cut(a, ":")
	if !ok || vendor == "" {
		return malformed(msgVendor, "action %q", a)
	}
	if strings.Contains(name, ":") {
		return malformed(msgOneColon, "action %q", a)
	}
	if !actionChars(vendor) {
		return malformed(msgVendor, "action %q", a)
	}
	if name == "" || !actionChars(name) {
		return malformed(syntaxMessage, "action %q", a)
	}
	if kind == Trust && !strings.EqualFold(vendor, "sts") {
		return malformed(msgTrustAction, "action %q", a)
	}
	return nil
}

func actionChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case c == '-' || c == '_' || c == '.' || c == '*' || c == '?':
		default:
			return false
		}
	}
	return true
}

func parseResources(elem string, v any, d *dialect) ([]string, error) {
	if d.kind == Trust {
		return nil, malformed("Has prohibited field "+elem, "")
	}
	list, ok := stringList(v)
	if !ok {
		return nil, malformed(d.msg(syntaxMessage, msgS3InvalidResource), "%s is a %s, not a string or a list of strings", elem, typeName(v))
	}
	if len(list) == 0 {
		return nil, malformed(d.msg(msgNoResources, msgS3InvalidResource), "%s is empty", elem)
	}
	for _, r := range list {
		if d.s3() {
			if err := checkBucketResource(r, d); err != nil {
				return nil, err
			}
			continue
		}
		if r != "*" && !strings.HasPrefix(r, "arn:") {
			return nil, malformed(fmt.Sprintf(msgResourceFormat, r), "")
		}
	}
	return list, nil
}
