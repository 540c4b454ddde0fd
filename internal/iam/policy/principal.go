package policy

import "strings"

// parsePrincipals reads a Principal or NotPrincipal element: "*" or an object
// whose members are the principal types, each a string or a list of strings.
func parsePrincipals(v any) (*Principals, error) {
	switch t := v.(type) {
	case string:
		if t == "*" {
			return &Principals{Wildcard: true}, nil
		}
		return nil, malformed(msgInvalidPrincipal, "principal %q is neither \"*\" nor an object", t)
	case *object:
		if len(t.members) == 0 {
			return nil, malformed(msgInvalidPrincipal, "empty principal object")
		}
		ps := &Principals{}
		for _, m := range t.members {
			list, ok := stringList(m.val)
			if !ok || len(list) == 0 {
				return nil, malformed(msgInvalidPrincipal, "%s is not a string or a non-empty list of strings", m.key)
			}
			var valid func(string) bool
			switch m.key {
			case "AWS":
				ps.AWS, valid = list, validAWSPrincipal
			case "Service":
				ps.Service, valid = list, validServicePrincipal
			case "Federated":
				ps.Federated, valid = list, validFederatedPrincipal
			case "CanonicalUser":
				ps.CanonicalUser, valid = list, validCanonicalUser
			default:
				return nil, malformed(msgInvalidPrincipal, "unknown principal type %q", m.key)
			}
			for _, s := range list {
				if !valid(s) {
					return nil, malformed(msgInvalidPrincipal, "%s %q", m.key, s)
				}
			}
		}
		return ps, nil
	}
	return nil, malformed(msgInvalidPrincipal, "principal is a %s", typeName(v))
}

// validAWSPrincipal accepts "*", an account ID, and the ARNs of an account
// root, user, role, assumed-role session or federated user. Wildcards are
// not allowed inside them, as in AWS.
func validAWSPrincipal(s string) bool {
	if s == "*" || isAccountID(s) {
		return true
	}
	a, ok := splitPrincipalARN(s)
	if !ok || strings.ContainsAny(a.resource, "*?") {
		return false
	}
	typ, rest, _ := strings.Cut(a.resource, "/")
	switch a.service {
	case "iam":
		switch typ {
		case "root":
			return rest == "" && !strings.Contains(a.resource, "/")
		case "user", "role":
			return rest != "" && !strings.HasSuffix(rest, "/")
		}
	case "sts":
		switch typ {
		case "assumed-role":
			role, session, ok := strings.Cut(rest, "/")
			return ok && role != "" && session != "" && !strings.Contains(session, "/")
		case "federated-user":
			return rest != "" && !strings.Contains(rest, "/")
		}
	}
	return false
}

type principalARN struct {
	partition, service, account, resource string
}

// splitPrincipalARN splits arn:PARTITION:iam-or-sts::ACCOUNT:RESOURCE.
func splitPrincipalARN(s string) (principalARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[3] != "" || !isAccountID(parts[4]) {
		return principalARN{}, false
	}
	for i := 0; i < len(parts[1]); i++ {
		if c := parts[1][i]; !('a' <= c && c <= 'z' || c == '-') {
			return principalARN{}, false
		}
	}
	return principalARN{partition: parts[1], service: parts[2], account: parts[4], resource: parts[5]}, true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validServicePrincipal accepts DNS-like names such as s3.amazonaws.com.
func validServicePrincipal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validFederatedPrincipal accepts an identity provider's name
// (accounts.google.com) or ARN (arn:aws:iam::111122223333:saml-provider/x).
func validFederatedPrincipal(s string) bool {
	return s != "" && !strings.ContainsAny(s, "*? \t\r\n")
}

// validCanonicalUser accepts the 64 hex digits of a canonical user ID.
func validCanonicalUser(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// matches reports whether the principal who asks (nil: anonymous) is one of
// ps.
func (ps *Principals) matches(p *Principal) bool {
	if ps.Wildcard {
		return true
	}
	for _, a := range ps.AWS {
		if a == "*" {
			return true
		}
		if p != nil && awsPrincipalMatches(a, p) {
			return true
		}
	}
	if p == nil {
		return false
	}
	for _, s := range ps.Service {
		if p.Service != "" && s == p.Service {
			return true
		}
	}
	for _, f := range ps.Federated {
		if p.ARN != "" && f == p.ARN {
			return true
		}
	}
	// CanonicalUser never matches: Request carries no canonical IDs.
	return false
}

func awsPrincipalMatches(a string, p *Principal) bool {
	if isAccountID(a) {
		return p.Account == a
	}
	pa, ok := splitPrincipalARN(a)
	if !ok {
		return false
	}
	switch {
	case pa.service == "iam" && pa.resource == "root":
		return p.Account == pa.account
	case pa.service == "iam" && strings.HasPrefix(pa.resource, "role/"):
		return p.RoleARN == a || p.ARN == a
	}
	return p.ARN == a
}
