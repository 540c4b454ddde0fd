package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func mustParse(t *testing.T, kind Kind, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc), kind)
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	return p
}

// allowIdentity is an identity policy allowing actions on resources, each a
// JSON string or array.
func allowIdentity(action, resource string) string {
	return `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":` + action + `,"Resource":` + resource + `}}`
}

var (
	alice   = &Principal{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/alice"}
	bob     = &Principal{Account: "111122223333", ARN: "arn:aws:iam::111122223333:user/bob"}
	root    = &Principal{Account: "111122223333", ARN: "arn:aws:iam::111122223333:root"}
	outside = &Principal{Account: "444455556666", ARN: "arn:aws:iam::444455556666:user/alice"}
	session = &Principal{Account: "111122223333", ARN: "arn:aws:sts::111122223333:assumed-role/deploy/s1",
		RoleARN: "arn:aws:iam::111122223333:role/deploy"}
	session2 = &Principal{Account: "111122223333", ARN: "arn:aws:sts::111122223333:assumed-role/deploy/s2",
		RoleARN: "arn:aws:iam::111122223333:role/deploy"}
	otherRoleSession = &Principal{Account: "111122223333", ARN: "arn:aws:sts::111122223333:assumed-role/audit/s1",
		RoleARN: "arn:aws:iam::111122223333:role/audit"}
	role      = &Principal{Account: "111122223333", ARN: "arn:aws:iam::111122223333:role/deploy"}
	s3Service = &Principal{Service: "s3.amazonaws.com"}
	federated = &Principal{ARN: "arn:aws:iam::111122223333:saml-provider/corp"}
)

func TestParseShapes(t *testing.T) {
	p := mustParse(t, Resource, `{
		"Id": "pol1",
		"Statement": {
			"Sid": "any text, bucket policies allow it",
			"Effect": "Deny",
			"NotPrincipal": {"AWS": ["111122223333", "arn:aws:iam::111122223333:user/alice"], "Service": "s3.amazonaws.com"},
			"NotAction": "s3:GetObject",
			"NotResource": ["arn:aws:s3:::b/*", "arn:aws:s3:::b"],
			"Condition": {
				"Bool": {"aws:SecureTransport": false},
				"NumericLessThan": {"s3:max-keys": [10, 2.50, "1e3"]},
				"StringEquals": {"s3:prefix": [], "aws:username": "alice"}
			}
		}
	}`)
	want := &Policy{
		ID: "pol1",
		Statements: []Statement{{
			Sid:          "any text, bucket policies allow it",
			Effect:       "Deny",
			NotPrincipal: &Principals{AWS: []string{"111122223333", "arn:aws:iam::111122223333:user/alice"}, Service: []string{"s3.amazonaws.com"}},
			NotAction:    []string{"s3:GetObject"},
			NotResource:  []string{"arn:aws:s3:::b/*", "arn:aws:s3:::b"},
			Conditions: []Condition{
				{Operator: "Bool", Key: "aws:SecureTransport", Values: []string{"false"}},
				{Operator: "NumericLessThan", Key: "s3:max-keys", Values: []string{"10", "2.50", "1e3"}},
				{Operator: "StringEquals", Key: "s3:prefix", Values: []string{}},
				{Operator: "StringEquals", Key: "aws:username", Values: []string{"alice"}},
			},
		}},
		kind: Resource,
		raw:  p.raw,
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %+v\nwant %+v", p, want)
	}
	if p.Version != "" || p.Kind() != Resource {
		t.Fatalf("Version %q Kind %v", p.Version, p.Kind())
	}

	p = mustParse(t, Resource, `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":"*"}]}`)
	if !p.Statements[0].Principal.Wildcard || p.Statements[0].NotPrincipal != nil || p.Version != Version2008 {
		t.Fatalf("got %+v", p.Statements[0])
	}
}

func TestJSONKeepsDocument(t *testing.T) {
	doc := []byte("{ \"Statement\" : {\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"} }\n")
	p := mustParse(t, Identity, string(doc))
	doc[2] = 'X' // the caller's buffer is not the policy's
	got := p.JSON()
	if string(got) != "{ \"Statement\" : {\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"} }\n" {
		t.Fatalf("JSON() = %q", got)
	}
	got[0] = 'X'
	if p.JSON()[0] != '{' {
		t.Fatal("JSON() returned the policy's own buffer")
	}
}

func TestParseSizeLimit(t *testing.T) {
	base := allowIdentity(`"s3:GetObject"`, `"*"`)
	pad := func(n int) []byte { return []byte(base + strings.Repeat(" ", n-len(base))) }
	if _, err := Parse(pad(MaxSize), Identity); err != nil {
		t.Fatalf("document of exactly MaxSize bytes: %v", err)
	}
	_, err := Parse(pad(MaxSize+1), Identity)
	var me *MalformedError
	if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) || me.Message != msgTooLarge {
		t.Fatalf("document over MaxSize: %v", err)
	}
}

func TestParseMalformed(t *testing.T) {
	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":{` + body + `}}` }
	const ar = `"Action":"s3:GetObject","Resource":"*"`
	const pr = `"Principal":"*",` + ar
	tests := []struct {
		name string
		kind Kind
		doc  string
		msg  string
	}{
		{"not json", Identity, `{`, syntaxMessage},
		{"empty", Identity, ``, syntaxMessage},
		{"array at top", Identity, `[]`, syntaxMessage},
		{"trailing data", Identity, allowIdentity(`"*"`, `"*"`) + `{}`, syntaxMessage},
		{"duplicate top key", Identity, `{"Version":"2012-10-17","Version":"2012-10-17","Statement":{"Effect":"Allow",` + ar + `}}`, syntaxMessage},
		{"duplicate statement key", Identity, stmt(`"Effect":"Allow","Effect":"Deny",` + ar), syntaxMessage},
		{"duplicate condition key", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":{"aws:username":"a","aws:username":"b"}}`), syntaxMessage},
		{"unknown top element", Identity, `{"Version":"2012-10-17","Foo":1,"Statement":{"Effect":"Allow",` + ar + `}}`, syntaxMessage},
		{"unknown statement element", Identity, stmt(`"Effect":"Allow","Actions":"s3:GetObject","Resource":"*"`), syntaxMessage},
		{"element names are case-sensitive", Identity, stmt(`"effect":"Allow",` + ar), syntaxMessage},
		{"bad version", Identity, `{"Version":"2012-10-18","Statement":{"Effect":"Allow",` + ar + `}}`, syntaxMessage},
		{"version not a string", Identity, `{"Version":2012,"Statement":{"Effect":"Allow",` + ar + `}}`, syntaxMessage},
		{"id not a string", Identity, `{"Id":1,"Statement":{"Effect":"Allow",` + ar + `}}`, syntaxMessage},
		{"no statement", Identity, `{"Version":"2012-10-17"}`, msgMissingStatement},
		{"empty statement list", Identity, `{"Version":"2012-10-17","Statement":[]}`, msgMissingStatement},
		{"statement is a string", Identity, `{"Statement":"x"}`, syntaxMessage},
		{"statement list holds a string", Identity, `{"Statement":["x"]}`, syntaxMessage},
		{"no effect", Identity, stmt(ar), msgMissingEffect},
		{"lower-case effect", Identity, stmt(`"Effect":"allow",` + ar), "Invalid effect: allow"},
		{"effect not a string", Identity, stmt(`"Effect":true,` + ar), syntaxMessage},
		{"identity with principal", Identity, stmt(`"Effect":"Allow",` + pr), msgPrincipalForbidden},
		{"identity with not principal", Identity, stmt(`"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},` + ar), msgPrincipalForbidden},
		{"resource without principal", Resource, stmt(`"Effect":"Allow",` + ar), msgMissingPrincipal},
		{"principal and not principal", Resource, stmt(`"Effect":"Deny","NotPrincipal":"*",` + pr), syntaxMessage},
		{"not principal with allow", Resource, stmt(`"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},` + ar), msgNotPrincipalAllow},
		{"principal string not star", Resource, stmt(`"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root",` + ar), msgInvalidPrincipal},
		{"principal user name", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"alice"},` + ar), msgInvalidPrincipal},
		{"principal short account", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"1111"},` + ar), msgInvalidPrincipal},
		{"principal wildcard role", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/*"},` + ar), msgInvalidPrincipal},
		{"principal group", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:group/g"},` + ar), msgInvalidPrincipal},
		{"principal s3 arn", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"arn:aws:s3:::bucket"},` + ar), msgInvalidPrincipal},
		{"principal session without name", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/r"},` + ar), msgInvalidPrincipal},
		{"principal unknown type", Resource, stmt(`"Effect":"Allow","Principal":{"Users":"x"},` + ar), msgInvalidPrincipal},
		{"principal empty object", Resource, stmt(`"Effect":"Allow","Principal":{},` + ar), msgInvalidPrincipal},
		{"principal empty list", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":[]},` + ar), msgInvalidPrincipal},
		{"principal number", Resource, stmt(`"Effect":"Allow","Principal":{"AWS":111122223333},` + ar), msgInvalidPrincipal},
		{"service wildcard", Resource, stmt(`"Effect":"Allow","Principal":{"Service":"*"},` + ar), msgInvalidPrincipal},
		{"canonical user not hex", Resource, stmt(`"Effect":"Allow","Principal":{"CanonicalUser":"abc"},` + ar), msgInvalidPrincipal},
		{"no action", Identity, stmt(`"Effect":"Allow","Resource":"*"`), msgNoActions},
		{"empty action list", Identity, stmt(`"Effect":"Allow","Action":[],"Resource":"*"`), msgNoActions},
		{"action and not action", Identity, stmt(`"Effect":"Allow","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"*"`), syntaxMessage},
		{"action without vendor", Identity, stmt(`"Effect":"Allow","Action":"GetObject","Resource":"*"`), msgVendor},
		{"action with empty vendor", Identity, stmt(`"Effect":"Allow","Action":":GetObject","Resource":"*"`), msgVendor},
		{"action with two colons", Identity, stmt(`"Effect":"Allow","Action":"s3:Get:Object","Resource":"*"`), msgOneColon},
		{"action with space in vendor", Identity, stmt(`"Effect":"Allow","Action":"s 3:GetObject","Resource":"*"`), msgVendor},
		{"action without name", Identity, stmt(`"Effect":"Allow","Action":"s3:","Resource":"*"`), syntaxMessage},
		{"action is a number", Identity, stmt(`"Effect":"Allow","Action":3,"Resource":"*"`), syntaxMessage},
		{"action list holds a number", Identity, stmt(`"Effect":"Allow","Action":["s3:GetObject",3],"Resource":"*"`), syntaxMessage},
		{"no resource", Identity, stmt(`"Effect":"Allow","Action":"s3:GetObject"`), msgNoResources},
		{"no resource in bucket policy", Resource, stmt(`"Effect":"Allow","Principal":"*","Action":"s3:GetObject"`), msgNoResources},
		{"empty resource list", Identity, stmt(`"Effect":"Allow","Action":"s3:GetObject","Resource":[]`), msgNoResources},
		{"resource and not resource", Identity, stmt(`"Effect":"Allow",` + ar + `,"NotResource":"*"`), syntaxMessage},
		{"resource not an arn", Identity, stmt(`"Effect":"Allow","Action":"s3:GetObject","Resource":"bucket/*"`), `Resource bucket/* must be in ARN format or "*".`},
		{"sid repeated", Identity, `{"Statement":[{"Sid":"A","Effect":"Allow",` + ar + `},{"Sid":"A","Effect":"Deny",` + ar + `}]}`, msgSidUnique},
		{"sid with space in identity policy", Identity, stmt(`"Sid":"a b","Effect":"Allow",` + ar), msgSidChars},
		{"sid not a string", Resource, stmt(`"Sid":1,"Effect":"Allow",` + pr), syntaxMessage},
		{"unknown operator", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEqual":{"aws:username":"a"}}`), "Invalid Condition type : StringEqual"},
		{"operator names are case-sensitive", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"stringequals":{"aws:username":"a"}}`), "Invalid Condition type : stringequals"},
		{"null if exists", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"NullIfExists":{"aws:username":"true"}}`), "Invalid Condition type : NullIfExists"},
		{"for any value null", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"ForAnyValue:Null":{"aws:username":"true"}}`), "Invalid Condition type : ForAnyValue:Null"},
		{"if exists alone", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"IfExists":{"aws:username":"true"}}`), "Invalid Condition type : IfExists"},
		{"condition key without vendor", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":{"username":"a"}}`), msgVendor},
		{"condition is a list", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":[]`), syntaxMessage},
		{"condition operator holds a string", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":"a"}`), syntaxMessage},
		{"condition value object", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":{"aws:username":{"a":"b"}}}`), syntaxMessage},
		{"condition value null", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":{"aws:username":null}}`), syntaxMessage},
		{"condition nested list", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"StringEquals":{"aws:username":[["a"]]}}`), syntaxMessage},
		{"numeric value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"NumericEquals":{"s3:max-keys":"ten"}}`), syntaxMessage},
		{"numeric hex", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"NumericEquals":{"s3:max-keys":"0x10"}}`), syntaxMessage},
		{"date value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}`), syntaxMessage},
		{"ip value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1/8"}}`), syntaxMessage},
		{"bool value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"Bool":{"aws:SecureTransport":"yes"}}`), syntaxMessage},
		{"null value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"Null":{"aws:username":"maybe"}}`), syntaxMessage},
		{"binary value", Identity, stmt(`"Effect":"Allow",` + ar + `,"Condition":{"BinaryEquals":{"aws:x":"not base64!"}}`), syntaxMessage},
		{"trust with resource", Trust, stmt(`"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"`), "Has prohibited field Resource"},
		{"trust with not resource", Trust, stmt(`"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole","NotResource":"*"`), "Has prohibited field NotResource"},
		{"trust with s3 action", Trust, stmt(`"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"s3:GetObject"`), msgTrustAction},
		{"trust with star action", Trust, stmt(`"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"*"`), msgTrustAction},
		{"trust without principal", Trust, stmt(`"Effect":"Allow","Action":"sts:AssumeRole"`), msgMissingPrincipal},
		{"trust with not principal", Trust, stmt(`"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"`), "Has prohibited field NotPrincipal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc), tt.kind)
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tt.doc, p)
			}
			var me *MalformedError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &me) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if me.Message != tt.msg {
				t.Fatalf("message %q, want %q (error: %v)", me.Message, tt.msg, err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		doc  string
	}{
		{"statement list", Identity, `{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:Delete*","Resource":"arn:aws:s3:::b/*"}]}`},
		{"star action", Identity, allowIdentity(`"*"`, `"*"`)},
		{"wildcard vendor", Identity, allowIdentity(`"s?:Get*"`, `"*"`)},
		{"sid alphanumeric", Identity, `{"Statement":{"Sid":"Stmt1","Effect":"Allow","Action":"s3:*","Resource":"*"}}`},
		{"empty sids repeat", Identity, `{"Statement":[{"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"}]}`},
		{"every principal form", Resource, `{"Statement":{"Effect":"Allow","Principal":{
			"AWS":["*","111122223333","arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:user/path/alice",
				"arn:aws:iam::111122223333:role/deploy","arn:aws:sts::111122223333:assumed-role/deploy/s1",
				"arn:aws:sts::111122223333:federated-user/fred","arn:aws-cn:iam::111122223333:root"],
			"Service":"s3.amazonaws.com",
			"Federated":["cognito-identity.amazonaws.com","arn:aws:iam::111122223333:saml-provider/corp"],
			"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
			"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`},
		{"not principal with deny", Resource, `{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}}`},
		{"trust policy", Trust, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":["backup.amazonaws.com"]},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"sts:ExternalId":"x"}}}}`},
		{"trust wildcard sts action", Trust, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"NotAction":"sts:Set*"}}`},
		{"every operator", Identity, `{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{
			"StringEquals":{"a:k":"v"},"StringNotEquals":{"a:k":"v"},"StringEqualsIgnoreCase":{"a:k":"v"},
			"StringNotEqualsIgnoreCase":{"a:k":"v"},"StringLike":{"a:k":"v*"},"StringNotLike":{"a:k":"v?"},
			"NumericEquals":{"a:k":1},"NumericNotEquals":{"a:k":"-1.5"},"NumericLessThan":{"a:k":"1e3"},
			"NumericLessThanEquals":{"a:k":".5"},"NumericGreaterThan":{"a:k":"+2"},"NumericGreaterThanEquals":{"a:k":"2."},
			"DateEquals":{"a:k":"2024-01-01T00:00:00Z"},"DateNotEquals":{"a:k":"1704067200"},"DateLessThan":{"a:k":"2024-01-01"},
			"DateLessThanEquals":{"a:k":"2024-01-01T00:00:00.123+01:00"},"DateGreaterThan":{"a:k":"2024-01-01T10:00Z"},
			"DateGreaterThanEquals":{"a:k":1704067200},"Bool":{"a:k":true},"BinaryEquals":{"a:k":"QmluYXJ5"},
			"IpAddress":{"a:k":["10.0.0.0/8","192.0.2.1","2001:db8::/32"]},"NotIpAddress":{"a:k":"::1"},
			"ArnEquals":{"a:k":"arn:aws:s3:::b"},"ArnLike":{"a:k":"arn:aws:s3:::b/*"},"ArnNotEquals":{"a:k":"*"},
			"ArnNotLike":{"a:k":"arn:*"},"Null":{"a:k":"true"},
			"StringEqualsIfExists":{"a:k":"v"},"NumericLessThanIfExists":{"a:k":"1"},
			"ForAnyValue:StringLike":{"a:k":"v*"},"ForAllValues:StringEqualsIgnoreCaseIfExists":{"a:k":"v"},
			"ForAllValues:IpAddress":{"a:k":"10.0.0.0/8"},"BoolIfExists":{"b:k":"${aws:SecureTransport}"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.doc), tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind() != tt.kind {
				t.Fatalf("Kind %v", p.Kind())
			}
		})
	}
}

func TestEvaluateActions(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"s3:Get*", "s3:GetObject", true},
		{"s3:Get*", "s3:GetObjectAcl", true},
		{"s3:Get*", "s3:PutObject", false},
		{"s3:Get*", "s3:Get", true},
		{"s3:GetObject", "s3:GetObjectAcl", false},
		{"s3:GetObject", "S3:GETOBJECT", true},
		{"S3:getobject", "s3:GetObject", true},
		{"s3:*", "s3:ListBucket", true},
		{"s3:*", "iam:CreateUser", false},
		{"*", "iam:CreateUser", true},
		{"*", "", true},
		{"s3:?etObject", "s3:GetObject", true},
		{"s3:?etObject", "s3:SetObject", true},
		{"s3:?etObject", "s3:etObject", false},
		{"s3:?etObject", "s3:GGetObject", false},
		{"s3:GetObjec?", "s3:GetObjec", false},
		{"s3:GetObjec?", "s3:GetObject", true},
		{"s3:Get*Acl", "s3:GetObjectAcl", true},
		{"s3:Get*Acl", "s3:GetObjectAclX", false},
		{"s3:*Object*", "s3:PutObjectTagging", true},
		{"s?:List*", "s3:ListBucket", true},
		{"s3:List*", "s3x:ListBucket", false},
	}
	for _, tt := range tests {
		p := mustParse(t, Identity, allowIdentity(fmt.Sprintf("%q", tt.pattern), `"*"`))
		got := p.Evaluate(&Request{Action: tt.action, Resource: "arn:aws:s3:::b"})
		if (got == Allow) != tt.want {
			t.Errorf("action %q against %q: %v, want match %v", tt.action, tt.pattern, got, tt.want)
		}
	}
}

func TestEvaluateResources(t *testing.T) {
	tests := []struct {
		pattern, resource string
		want              bool
	}{
		{"arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/key", true},
		{"arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b/c", true},
		{"arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket", false},
		{"arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/", true},
		{"arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket2/key", false},
		{"arn:aws:s3:::bucket", "arn:aws:s3:::bucket/key", false},
		{"arn:aws:s3:::bucket*", "arn:aws:s3:::bucket", true},
		{"arn:aws:s3:::bucket*", "arn:aws:s3:::bucket-logs/x", true},
		{"arn:aws:s3:::b?cket/*", "arn:aws:s3:::bucket/x", true},
		{"arn:aws:s3:::b?cket/*", "arn:aws:s3:::bcket/x", false},
		{"arn:aws:s3:::bucket/a?c", "arn:aws:s3:::bucket/a/c", true},
		{"arn:aws:s3:::bucket/a?", "arn:aws:s3:::bucket/a", false},
		{"arn:aws:s3:::bucket/a*?", "arn:aws:s3:::bucket/a", false},
		{"arn:aws:s3:::bucket/a*?", "arn:aws:s3:::bucket/ab", true},
		{"arn:aws:s3:::bucket/*a*b*", "arn:aws:s3:::bucket/xaybz", true},
		{"arn:aws:s3:::bucket/*a*b*", "arn:aws:s3:::bucket/xbyaz", false},
		{"arn:aws:s3:::Bucket/*", "arn:aws:s3:::bucket/k", false}, // case-sensitive
		{"arn:aws:s3:::bucket/K", "arn:aws:s3:::bucket/k", false},
		{"arn:aws:*", "arn:aws:s3:::bucket/key", true}, // * crosses ':' and '/'
		{"arn:*:s3:::bucket/*", "arn:aws:s3:::bucket/x", true},
		{"*", "arn:aws:s3:::bucket/key", true},
		{"*", "*", true},
		{"arn:aws:s3:::*", "*", false},
		{"arn:aws:s3:::bucket/é?", "arn:aws:s3:::bucket/éx", true}, // ? is one character
	}
	for _, tt := range tests {
		p := mustParse(t, Identity, allowIdentity(`"s3:*"`, fmt.Sprintf("%q", tt.pattern)))
		got := p.Evaluate(&Request{Action: "s3:GetObject", Resource: tt.resource})
		if (got == Allow) != tt.want {
			t.Errorf("resource %q against %q: %v, want match %v", tt.resource, tt.pattern, got, tt.want)
		}
	}
}

func TestEvaluateDenyWins(t *testing.T) {
	for _, doc := range []string{
		`{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"}]}`,
		`{"Statement":[{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::b/*"},{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`,
	} {
		p := mustParse(t, Identity, doc)
		for _, c := range []struct {
			action, resource string
			want             Decision
		}{
			{"s3:DeleteObject", "arn:aws:s3:::b/k", Deny},
			{"s3:GetObject", "arn:aws:s3:::b/k", Allow},
			{"s3:DeleteObject", "arn:aws:s3:::other/k", Allow},
			{"iam:CreateUser", "*", NotApplicable},
		} {
			if got := p.Evaluate(&Request{Action: c.action, Resource: c.resource}); got != c.want {
				t.Errorf("%s %s %s: %v, want %v", doc, c.action, c.resource, got, c.want)
			}
		}
	}
	var nilPolicy *Policy
	if got := nilPolicy.Evaluate(&Request{}); got != NotApplicable {
		t.Errorf("nil policy: %v", got)
	}
}

func TestEvaluateNotActionNotResource(t *testing.T) {
	p := mustParse(t, Identity, `{"Statement":[
		{"Effect":"Allow","NotAction":"iam:*","Resource":"*"},
		{"Effect":"Deny","NotAction":["s3:GetObject","s3:List*"],"Resource":"arn:aws:s3:::archive/*"},
		{"Effect":"Deny","Action":"s3:PutObject","NotResource":["arn:aws:s3:::public/*","arn:aws:s3:::archive/*"]}]}`)
	tests := []struct {
		action, resource string
		want             Decision
	}{
		{"s3:GetObject", "arn:aws:s3:::data/k", Allow},
		{"iam:CreateUser", "*", NotApplicable},
		{"s3:GetObject", "arn:aws:s3:::archive/k", Allow},
		{"s3:ListBucketVersions", "arn:aws:s3:::archive/k", Allow},
		{"s3:DeleteObject", "arn:aws:s3:::archive/k", Deny},
		{"s3:PutObject", "arn:aws:s3:::archive/k", Deny},
		{"s3:PutObject", "arn:aws:s3:::public/k", Allow},
		{"s3:PutObject", "arn:aws:s3:::private/k", Deny},
	}
	for _, tt := range tests {
		if got := p.Evaluate(&Request{Action: tt.action, Resource: tt.resource}); got != tt.want {
			t.Errorf("%s %s: %v, want %v", tt.action, tt.resource, got, tt.want)
		}
	}
}

func TestEvaluatePrincipals(t *testing.T) {
	tests := []struct {
		name      string
		principal string // the Principal element
		who       *Principal
		want      bool
	}{
		{"star anonymous", `"*"`, nil, true},
		{"star user", `"*"`, alice, true},
		{"star service", `"*"`, s3Service, true},
		{"aws star anonymous", `{"AWS":"*"}`, nil, true},
		{"account id user", `{"AWS":"111122223333"}`, alice, true},
		{"account id session", `{"AWS":"111122223333"}`, session, true},
		{"account id root", `{"AWS":"111122223333"}`, root, true},
		{"account id other account", `{"AWS":"111122223333"}`, outside, false},
		{"account id anonymous", `{"AWS":"111122223333"}`, nil, false},
		{"account id service", `{"AWS":"111122223333"}`, s3Service, false},
		{"account root arn user", `{"AWS":"arn:aws:iam::111122223333:root"}`, bob, true},
		{"account root arn other account", `{"AWS":"arn:aws:iam::111122223333:root"}`, outside, false},
		{"user arn same user", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, alice, true},
		{"user arn other user", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, bob, false},
		{"user arn same name other account", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, outside, false},
		{"user arn root", `{"AWS":"arn:aws:iam::111122223333:user/alice"}`, root, false},
		{"role arn session", `{"AWS":"arn:aws:iam::111122223333:role/deploy"}`, session, true},
		{"role arn other session", `{"AWS":"arn:aws:iam::111122223333:role/deploy"}`, session2, true},
		{"role arn role itself", `{"AWS":"arn:aws:iam::111122223333:role/deploy"}`, role, true},
		{"role arn other role", `{"AWS":"arn:aws:iam::111122223333:role/deploy"}`, otherRoleSession, false},
		{"role arn user", `{"AWS":"arn:aws:iam::111122223333:role/deploy"}`, alice, false},
		{"session arn exact", `{"AWS":"arn:aws:sts::111122223333:assumed-role/deploy/s1"}`, session, true},
		{"session arn other session", `{"AWS":"arn:aws:sts::111122223333:assumed-role/deploy/s1"}`, session2, false},
		{"service", `{"Service":"s3.amazonaws.com"}`, s3Service, true},
		{"service other", `{"Service":"backup.amazonaws.com"}`, s3Service, false},
		{"service user", `{"Service":"s3.amazonaws.com"}`, alice, false},
		{"service anonymous", `{"Service":"s3.amazonaws.com"}`, nil, false},
		{"federated provider", `{"Federated":"arn:aws:iam::111122223333:saml-provider/corp"}`, federated, true},
		{"federated other", `{"Federated":"accounts.google.com"}`, federated, false},
		{"canonical user", `{"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}`, alice, false},
		{"list", `{"AWS":["444455556666","arn:aws:iam::111122223333:user/bob"],"Service":"s3.amazonaws.com"}`, bob, true},
		{"list misses", `{"AWS":["444455556666","arn:aws:iam::111122223333:user/bob"]}`, alice, false},
		{"list other account", `{"AWS":["444455556666","arn:aws:iam::111122223333:user/bob"]}`, outside, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, Resource, `{"Statement":{"Effect":"Allow","Principal":`+tt.principal+`,"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`)
			got := p.Evaluate(&Request{Principal: tt.who, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"})
			if (got == Allow) != tt.want {
				t.Fatalf("got %v, want match %v", got, tt.want)
			}
			// NotPrincipal with the same list applies to exactly the others.
			np := mustParse(t, Resource, `{"Statement":{"Effect":"Deny","NotPrincipal":`+tt.principal+`,"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`)
			got = np.Evaluate(&Request{Principal: tt.who, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"})
			if (got == Deny) == tt.want {
				t.Fatalf("NotPrincipal: got %v, want applies %v", got, !tt.want)
			}
		})
	}
}

func TestEvaluateIdentityIgnoresPrincipal(t *testing.T) {
	p := mustParse(t, Identity, allowIdentity(`"s3:GetObject"`, `"*"`))
	for _, who := range []*Principal{nil, alice, s3Service} {
		if got := p.Evaluate(&Request{Principal: who, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k"}); got != Allow {
			t.Errorf("%+v: %v", who, got)
		}
	}
}

func TestEvaluateTrust(t *testing.T) {
	p := mustParse(t, Trust, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},"Action":"sts:AssumeRole"},
		{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":["sts:AssumeRole","sts:TagSession"],
		 "Condition":{"StringEquals":{"sts:ExternalId":"ext-123"}}},
		{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:user/alice"},"Action":"sts:*"}]}`)
	backup := &Principal{Service: "backup.amazonaws.com"}
	carol := &Principal{Account: "444455556666", ARN: "arn:aws:iam::444455556666:user/carol"}
	tests := []struct {
		name   string
		who    *Principal
		action string
		ctx    map[string][]string
		want   Decision
	}{
		{"service", backup, "sts:AssumeRole", nil, Allow},
		{"service other action", backup, "sts:TagSession", nil, NotApplicable},
		{"other service", s3Service, "sts:AssumeRole", nil, NotApplicable},
		{"account with external id", carol, "sts:AssumeRole", map[string][]string{"sts:ExternalId": {"ext-123"}}, Allow},
		{"account without external id", carol, "sts:AssumeRole", nil, NotApplicable},
		{"account wrong external id", carol, "sts:AssumeRole", map[string][]string{"sts:externalid": {"nope"}}, NotApplicable},
		{"denied user", outside, "sts:AssumeRole", map[string][]string{"sts:ExternalId": {"ext-123"}}, Deny},
		{"anonymous", nil, "sts:AssumeRole", nil, NotApplicable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Evaluate(&Request{Principal: tt.who, Action: tt.action, Resource: "arn:aws:iam::111122223333:role/r", Context: tt.ctx})
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// ctx builds a request context from key, values, key, values, ...
func ctx(kv ...any) map[string][]string {
	m := map[string][]string{}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			m[kv[i].(string)] = []string{v}
		case []string:
			m[kv[i].(string)] = v
		}
	}
	return m
}

func TestEvaluateConditions(t *testing.T) {
	tests := []struct {
		op, key, values string // values is JSON
		ctx             map[string][]string
		want            bool
	}{
		// String operators.
		{"StringEquals", "aws:username", `"alice"`, ctx("aws:username", "alice"), true},
		{"StringEquals", "aws:username", `"alice"`, ctx("aws:username", "Alice"), false},
		{"StringEquals", "aws:username", `"alice"`, nil, false},
		{"StringEquals", "aws:username", `"alice"`, ctx("aws:username", []string{}), false}, // no values is absent
		{"StringEquals", "AWS:UserName", `"alice"`, ctx("aws:USERNAME", "alice"), true},     // key names fold
		{"StringEquals", "aws:username", `["bob","alice"]`, ctx("aws:username", "alice"), true},
		{"StringEquals", "s3:prefix", `"home/*"`, ctx("s3:prefix", "home/x"), false}, // no wildcards
		{"StringEquals", "s3:prefix", `"home/*"`, ctx("s3:prefix", "home/*"), true},
		{"StringEquals", "s3:max-keys", `10`, ctx("s3:max-keys", "10"), true},
		{"StringNotEquals", "aws:username", `"alice"`, ctx("aws:username", "bob"), true},
		{"StringNotEquals", "aws:username", `"alice"`, ctx("aws:username", "alice"), false},
		{"StringNotEquals", "aws:username", `"alice"`, nil, true}, // negated: missing key holds
		{"StringNotEquals", "aws:username", `["alice","bob"]`, ctx("aws:username", "bob"), false},
		{"StringNotEquals", "aws:username", `["alice","bob"]`, ctx("aws:username", "carol"), true},
		{"StringEqualsIgnoreCase", "aws:username", `"ALICE"`, ctx("aws:username", "alice"), true},
		{"StringEqualsIgnoreCase", "aws:username", `"ALICE"`, ctx("aws:username", "bob"), false},
		{"StringEqualsIgnoreCase", "aws:username", `"ALICE"`, nil, false},
		{"StringNotEqualsIgnoreCase", "aws:username", `"ALICE"`, ctx("aws:username", "alice"), false},
		{"StringNotEqualsIgnoreCase", "aws:username", `"ALICE"`, ctx("aws:username", "bob"), true},
		{"StringNotEqualsIgnoreCase", "aws:username", `"ALICE"`, nil, true},
		{"StringLike", "s3:prefix", `"home/*"`, ctx("s3:prefix", "home/alice/x"), true},
		{"StringLike", "s3:prefix", `"home/*"`, ctx("s3:prefix", "homework"), false},
		{"StringLike", "s3:prefix", `"home/*"`, ctx("s3:prefix", "Home/x"), false},
		{"StringLike", "s3:prefix", `"a?c"`, ctx("s3:prefix", "abc"), true},
		{"StringLike", "s3:prefix", `"a?c"`, ctx("s3:prefix", "abbc"), false},
		{"StringLike", "s3:prefix", `["x","home/*"]`, ctx("s3:prefix", "home/"), true},
		{"StringLike", "s3:prefix", `"home/*"`, nil, false},
		{"StringNotLike", "s3:prefix", `"home/*"`, ctx("s3:prefix", "other"), true},
		{"StringNotLike", "s3:prefix", `"home/*"`, ctx("s3:prefix", "home/x"), false},
		{"StringNotLike", "s3:prefix", `"home/*"`, nil, true},

		// Numeric operators.
		{"NumericEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), true},
		{"NumericEquals", "s3:max-keys", `10`, ctx("s3:max-keys", "10.0"), true},
		{"NumericEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "1e1"), true},
		{"NumericEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "11"), false},
		{"NumericEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "ten"), false},
		{"NumericEquals", "s3:max-keys", `"10"`, nil, false},
		{"NumericNotEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "11"), true},
		{"NumericNotEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), false},
		{"NumericNotEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "ten"), true},
		{"NumericNotEquals", "s3:max-keys", `"10"`, nil, true},
		{"NumericLessThan", "s3:max-keys", `"10"`, ctx("s3:max-keys", "9"), true},
		{"NumericLessThan", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), false},
		{"NumericLessThan", "s3:max-keys", `"10"`, ctx("s3:max-keys", "-11.5"), true},
		{"NumericLessThan", "s3:max-keys", `"10"`, nil, false},
		{"NumericLessThanEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), true},
		{"NumericLessThanEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "11"), false},
		{"NumericGreaterThan", "s3:max-keys", `"10"`, ctx("s3:max-keys", "11"), true},
		{"NumericGreaterThan", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), false},
		{"NumericGreaterThanEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), true},
		{"NumericGreaterThanEquals", "s3:max-keys", `"10"`, ctx("s3:max-keys", "9.99"), false},
		{"NumericGreaterThanEquals", "s3:max-keys", `"10"`, nil, false},

		// Date operators.
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), true},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T01:00:00+01:00"), true},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "1704067200"), true},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), true},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:01Z"), false},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "soon"), false},
		{"DateEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, false},
		{"DateNotEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-02T00:00:00Z"), true},
		{"DateNotEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), false},
		{"DateNotEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, true},
		{"DateLessThan", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2023-12-31T23:59:59Z"), true},
		{"DateLessThan", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), false},
		{"DateLessThan", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, false},
		{"DateLessThanEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), true},
		{"DateLessThanEquals", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00.5Z"), false},
		{"DateGreaterThan", "aws:EpochTime", `1704067200`, ctx("aws:EpochTime", "1704067201"), true},
		{"DateGreaterThan", "aws:EpochTime", `1704067200`, ctx("aws:EpochTime", "1704067200"), false},
		{"DateGreaterThanEquals", "aws:EpochTime", `"2024-01-01T00:00:00Z"`, ctx("aws:EpochTime", "1704067200"), true},
		{"DateGreaterThanEquals", "aws:EpochTime", `"2024-01-01T00:00:00Z"`, ctx("aws:EpochTime", "1704067199"), false},
		{"DateGreaterThanEquals", "aws:EpochTime", `"2024-01-01T00:00:00Z"`, nil, false},

		// Bool.
		{"Bool", "aws:SecureTransport", `"true"`, ctx("aws:SecureTransport", "true"), true},
		{"Bool", "aws:SecureTransport", `true`, ctx("aws:SecureTransport", "true"), true},
		{"Bool", "aws:SecureTransport", `"true"`, ctx("aws:SecureTransport", "TRUE"), true},
		{"Bool", "aws:SecureTransport", `"true"`, ctx("aws:SecureTransport", "false"), false},
		{"Bool", "aws:SecureTransport", `false`, ctx("aws:SecureTransport", "false"), true},
		{"Bool", "aws:SecureTransport", `"true"`, nil, false},
		{"Bool", "aws:SecureTransport", `"false"`, nil, false},

		// BinaryEquals.
		{"BinaryEquals", "aws:x", `"QmluYXJ5"`, ctx("aws:x", "QmluYXJ5"), true},
		{"BinaryEquals", "aws:x", `"QmluYXJ5"`, ctx("aws:x", "QmluYXJ6"), false},
		{"BinaryEquals", "aws:x", `"QmluYXJ5"`, nil, false},

		// IP addresses.
		{"IpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "203.0.113.7"), true},
		{"IpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "203.0.114.7"), false},
		{"IpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "::ffff:203.0.113.7"), true},
		{"IpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "not-an-ip"), false},
		{"IpAddress", "aws:SourceIp", `"203.0.113.0/24"`, nil, false},
		{"IpAddress", "aws:SourceIp", `"203.0.113.7"`, ctx("aws:SourceIp", "203.0.113.7"), true}, // plain IP is /32
		{"IpAddress", "aws:SourceIp", `"203.0.113.7"`, ctx("aws:SourceIp", "203.0.113.8"), false},
		{"IpAddress", "aws:SourceIp", `"2001:db8::/32"`, ctx("aws:SourceIp", "2001:db8:1::5"), true},
		{"IpAddress", "aws:SourceIp", `"2001:db8::/32"`, ctx("aws:SourceIp", "2001:db9::5"), false},
		{"IpAddress", "aws:SourceIp", `"2001:db8::1"`, ctx("aws:SourceIp", "2001:db8::2"), false}, // plain IPv6 is /128
		{"IpAddress", "aws:SourceIp", `["10.0.0.0/8","2001:db8::/32"]`, ctx("aws:SourceIp", "10.9.9.9"), true},
		{"IpAddress", "aws:SourceIp", `"10.1.2.3/8"`, ctx("aws:SourceIp", "10.9.9.9"), true},
		{"NotIpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "198.51.100.1"), true},
		{"NotIpAddress", "aws:SourceIp", `"203.0.113.0/24"`, ctx("aws:SourceIp", "203.0.113.1"), false},
		{"NotIpAddress", "aws:SourceIp", `"203.0.113.0/24"`, nil, true},

		// ARNs.
		{"ArnEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, ctx("aws:SourceArn", "arn:aws:s3:::bucket"), true},
		{"ArnEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, ctx("aws:SourceArn", "arn:aws:s3:::Bucket"), false},
		{"ArnEquals", "aws:SourceArn", `"arn:aws:s3:::bucket*"`, ctx("aws:SourceArn", "arn:aws:s3:::bucket2"), true},
		{"ArnEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, nil, false},
		{"ArnLike", "aws:SourceArn", `"arn:aws:s3:::bucket/*"`, ctx("aws:SourceArn", "arn:aws:s3:::bucket/a/b:c"), true},
		{"ArnLike", "aws:SourceArn", `"arn:aws:iam::*:role/r"`, ctx("aws:SourceArn", "arn:aws:iam::111122223333:role/r"), true},
		{"ArnLike", "aws:SourceArn", `"arn:aws:*:::bucket"`, ctx("aws:SourceArn", "arn:aws:s3:us-east-1::bucket"), false}, // * stays in its part
		{"ArnLike", "aws:SourceArn", `"arn:aws:s3:::*"`, ctx("aws:SourceArn", "arn:aws:s3:::a:b"), true},
		{"ArnLike", "aws:SourceArn", `"arn:aws:s3:::*"`, ctx("aws:SourceArn", "bucket"), false},
		{"ArnLike", "aws:SourceArn", `"*"`, ctx("aws:SourceArn", "arn:aws:s3:::a"), true},
		{"ArnNotEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, ctx("aws:SourceArn", "arn:aws:s3:::other"), true},
		{"ArnNotEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, ctx("aws:SourceArn", "arn:aws:s3:::bucket"), false},
		{"ArnNotEquals", "aws:SourceArn", `"arn:aws:s3:::bucket"`, nil, true},
		{"ArnNotLike", "aws:SourceArn", `"arn:aws:s3:::b*"`, ctx("aws:SourceArn", "arn:aws:s3:::bucket"), false},
		{"ArnNotLike", "aws:SourceArn", `"arn:aws:s3:::b*"`, ctx("aws:SourceArn", "arn:aws:s3:::other"), true},
		{"ArnNotLike", "aws:SourceArn", `"arn:aws:s3:::b*"`, nil, true},

		// Null.
		{"Null", "aws:TokenIssueTime", `"true"`, nil, true},
		{"Null", "aws:TokenIssueTime", `"true"`, ctx("aws:TokenIssueTime", []string{}), true},
		{"Null", "aws:TokenIssueTime", `"true"`, ctx("aws:TokenIssueTime", "x"), false},
		{"Null", "aws:TokenIssueTime", `false`, ctx("aws:TokenIssueTime", "x"), true},
		{"Null", "aws:TokenIssueTime", `"false"`, nil, false},
		{"Null", "aws:TokenIssueTime", `["true","false"]`, nil, true},

		// IfExists: a missing key holds, a present one is compared.
		{"StringEqualsIfExists", "aws:username", `"alice"`, nil, true},
		{"StringEqualsIfExists", "aws:username", `"alice"`, ctx("aws:username", "alice"), true},
		{"StringEqualsIfExists", "aws:username", `"alice"`, ctx("aws:username", "bob"), false},
		{"StringNotEqualsIfExists", "aws:username", `"alice"`, ctx("aws:username", "alice"), false},
		{"StringNotEqualsIfExists", "aws:username", `"alice"`, nil, true},
		{"StringEqualsIgnoreCaseIfExists", "aws:username", `"ALICE"`, nil, true},
		{"StringNotEqualsIgnoreCaseIfExists", "aws:username", `"ALICE"`, ctx("aws:username", "alice"), false},
		{"StringLikeIfExists", "s3:prefix", `"home/*"`, nil, true},
		{"StringLikeIfExists", "s3:prefix", `"home/*"`, ctx("s3:prefix", "x"), false},
		{"StringNotLikeIfExists", "s3:prefix", `"home/*"`, ctx("s3:prefix", "home/x"), false},
		{"NumericEqualsIfExists", "s3:max-keys", `"10"`, nil, true},
		{"NumericNotEqualsIfExists", "s3:max-keys", `"10"`, ctx("s3:max-keys", "10"), false},
		{"NumericLessThanIfExists", "s3:max-keys", `"10"`, nil, true},
		{"NumericLessThanIfExists", "s3:max-keys", `"10"`, ctx("s3:max-keys", "11"), false},
		{"NumericLessThanEqualsIfExists", "s3:max-keys", `"10"`, nil, true},
		{"NumericGreaterThanIfExists", "s3:max-keys", `"10"`, nil, true},
		{"NumericGreaterThanEqualsIfExists", "s3:max-keys", `"10"`, ctx("s3:max-keys", "9"), false},
		{"DateEqualsIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, true},
		{"DateNotEqualsIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2024-01-01T00:00:00Z"), false},
		{"DateLessThanIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, true},
		{"DateLessThanEqualsIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2025-01-01T00:00:00Z"), false},
		{"DateGreaterThanIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, nil, true},
		{"DateGreaterThanEqualsIfExists", "aws:CurrentTime", `"2024-01-01T00:00:00Z"`, ctx("aws:CurrentTime", "2025-01-01T00:00:00Z"), true},
		{"BoolIfExists", "aws:SecureTransport", `"true"`, nil, true},
		{"BoolIfExists", "aws:SecureTransport", `"true"`, ctx("aws:SecureTransport", "false"), false},
		{"BinaryEqualsIfExists", "aws:x", `"QmluYXJ5"`, nil, true},
		{"IpAddressIfExists", "aws:SourceIp", `"10.0.0.0/8"`, nil, true},
		{"IpAddressIfExists", "aws:SourceIp", `"10.0.0.0/8"`, ctx("aws:SourceIp", "11.0.0.1"), false},
		{"NotIpAddressIfExists", "aws:SourceIp", `"10.0.0.0/8"`, ctx("aws:SourceIp", "10.0.0.1"), false},
		{"ArnEqualsIfExists", "aws:SourceArn", `"arn:aws:s3:::b"`, nil, true},
		{"ArnLikeIfExists", "aws:SourceArn", `"arn:aws:s3:::b"`, ctx("aws:SourceArn", "arn:aws:s3:::c"), false},
		{"ArnNotEqualsIfExists", "aws:SourceArn", `"arn:aws:s3:::b"`, ctx("aws:SourceArn", "arn:aws:s3:::b"), false},
		{"ArnNotLikeIfExists", "aws:SourceArn", `"arn:aws:s3:::b"`, nil, true},

		// Several context values.
		{"StringEquals", "aws:TagKeys", `"team"`, ctx("aws:TagKeys", []string{"owner", "team"}), true},
		{"StringNotEquals", "aws:TagKeys", `"team"`, ctx("aws:TagKeys", []string{"owner", "team"}), false},
		{"StringNotEquals", "aws:TagKeys", `"team"`, ctx("aws:TagKeys", []string{"owner", "cost"}), true},
		{"ForAnyValue:StringEquals", "aws:TagKeys", `["team","owner"]`, ctx("aws:TagKeys", []string{"cost", "owner"}), true},
		{"ForAnyValue:StringEquals", "aws:TagKeys", `["team","owner"]`, ctx("aws:TagKeys", []string{"cost"}), false},
		{"ForAnyValue:StringEquals", "aws:TagKeys", `["team","owner"]`, nil, false},
		{"ForAnyValue:StringNotEquals", "aws:TagKeys", `"team"`, ctx("aws:TagKeys", []string{"team", "owner"}), true},
		{"ForAnyValue:StringNotEquals", "aws:TagKeys", `"team"`, ctx("aws:TagKeys", []string{"team"}), false},
		{"ForAnyValue:StringNotEquals", "aws:TagKeys", `"team"`, nil, false},
		{"ForAnyValue:StringEqualsIfExists", "aws:TagKeys", `"team"`, nil, true},
		{"ForAllValues:StringEquals", "aws:TagKeys", `["team","owner"]`, ctx("aws:TagKeys", []string{"owner", "team"}), true},
		{"ForAllValues:StringEquals", "aws:TagKeys", `["team","owner"]`, ctx("aws:TagKeys", []string{"owner", "cost"}), false},
		{"ForAllValues:StringEquals", "aws:TagKeys", `["team","owner"]`, nil, true},
		{"ForAllValues:StringLike", "aws:TagKeys", `"Created*"`, ctx("aws:TagKeys", []string{"CreatedBy", "CreatedAt"}), true},
		{"ForAllValues:StringNotLike", "aws:TagKeys", `"key1*"`, ctx("aws:TagKeys", []string{"key2:audit"}), true},
		{"ForAllValues:StringNotLike", "aws:TagKeys", `"key1*"`, ctx("aws:TagKeys", []string{"key1:hr", "key1:personnel"}), false},
		{"ForAllValues:StringNotLike", "aws:TagKeys", `"key1*"`, ctx("aws:TagKeys", []string{"key1:legal", "key2:x"}), false},
		{"ForAllValues:StringNotLike", "aws:TagKeys", `"key1*"`, nil, true},
		{"ForAllValues:NumericLessThan", "aws:x", `"10"`, ctx("aws:x", []string{"1", "9"}), true},
		{"ForAllValues:NumericLessThan", "aws:x", `"10"`, ctx("aws:x", []string{"1", "19"}), false},
		{"ForAnyValue:IpAddress", "aws:x", `"10.0.0.0/8"`, ctx("aws:x", []string{"1.1.1.1", "10.1.1.1"}), true},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s/%s=%s/%v", tt.op, tt.key, tt.values, tt.ctx)
		t.Run(name, func(t *testing.T) {
			doc := fmt.Sprintf(`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{%q:{%q:%s}}}}`,
				tt.op, tt.key, tt.values)
			p := mustParse(t, Identity, doc)
			got := p.Evaluate(&Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/k", Context: tt.ctx})
			if (got == Allow) != tt.want {
				t.Fatalf("got %v, want condition %v", got, tt.want)
			}
		})
	}
}

func TestEvaluateConditionsAreANDed(t *testing.T) {
	p := mustParse(t, Identity, `{"Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*","Condition":{
		"StringLike":{"s3:prefix":"home/*","s3:delimiter":"/"},
		"Bool":{"aws:SecureTransport":"true"}}}}`)
	full := ctx("s3:prefix", "home/a", "s3:delimiter", "/", "aws:SecureTransport", "true")
	if got := p.Evaluate(&Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: full}); got != Allow {
		t.Fatalf("all conditions hold: %v", got)
	}
	for _, drop := range []string{"s3:prefix", "s3:delimiter", "aws:SecureTransport"} {
		c := ctx()
		for k, v := range full {
			if k != drop {
				c[k] = v
			}
		}
		if got := p.Evaluate(&Request{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: c}); got != NotApplicable {
			t.Errorf("without %s: %v", drop, got)
		}
	}
}

func TestPolicyVariables(t *testing.T) {
	tests := []struct {
		name     string
		version  string // "" leaves Version out
		resource string
		ctx      map[string][]string
		req      string
		want     bool
	}{
		{"username", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/alice/x", true},
		{"username other", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/bob/x", false},
		{"username missing", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", nil, "arn:aws:s3:::b/home//x", false},
		{"username several values", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", ctx("aws:username", []string{"a", "b"}), "arn:aws:s3:::b/home/a/x", false},
		{"key name folds", Version2012, "arn:aws:s3:::b/home/${AWS:UserName}/*", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/alice/x", true},
		{"value is literal", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", ctx("aws:username", "*"), "arn:aws:s3:::b/home/bob/x", false},
		{"value star literal", Version2012, "arn:aws:s3:::b/home/${aws:username}/*", ctx("aws:username", "*"), "arn:aws:s3:::b/home/*/x", true},
		{"account", Version2012, "arn:aws:s3:::b-${aws:PrincipalAccount}/*", ctx("aws:PrincipalAccount", "111122223333"), "arn:aws:s3:::b-111122223333/k", true},
		{"escaped star", Version2012, "arn:aws:s3:::b/${*}", nil, "arn:aws:s3:::b/*", true},
		{"escaped star is not a wildcard", Version2012, "arn:aws:s3:::b/${*}", nil, "arn:aws:s3:::b/x", false},
		{"escaped question", Version2012, "arn:aws:s3:::b/a${?}", nil, "arn:aws:s3:::b/a?", true},
		{"escaped question is not a wildcard", Version2012, "arn:aws:s3:::b/a${?}", nil, "arn:aws:s3:::b/ax", false},
		{"escaped dollar", Version2012, "arn:aws:s3:::b/${$}{x}", nil, "arn:aws:s3:::b/${x}", true},
		{"default used", Version2012, "arn:aws:s3:::b/${aws:username, 'guest'}/*", nil, "arn:aws:s3:::b/guest/x", true},
		{"default not used", Version2012, "arn:aws:s3:::b/${aws:username, 'guest'}/*", ctx("aws:username", "alice"), "arn:aws:s3:::b/guest/x", false},
		{"default with quote", Version2012, "arn:aws:s3:::b/${aws:username,'o''neil'}", nil, "arn:aws:s3:::b/o'neil", true},
		{"bad default", Version2012, "arn:aws:s3:::b/${aws:username, guest}", nil, "arn:aws:s3:::b/guest", false},
		{"unterminated is literal", Version2012, "arn:aws:s3:::b/${aws:username", ctx("aws:username", "alice"), "arn:aws:s3:::b/${aws:username", true},
		{"2008 is literal", Version2008, "arn:aws:s3:::b/home/${aws:username}/x", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/alice/x", false},
		{"2008 literal text matches", Version2008, "arn:aws:s3:::b/home/${aws:username}/x", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/${aws:username}/x", true},
		{"no version is 2008", "", "arn:aws:s3:::b/home/${aws:username}/x", ctx("aws:username", "alice"), "arn:aws:s3:::b/home/alice/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version := ""
			if tt.version != "" {
				version = `"Version":"` + tt.version + `",`
			}
			p := mustParse(t, Identity, `{`+version+`"Statement":{"Effect":"Allow","Action":"s3:*","Resource":`+jsonString(tt.resource)+`}}`)
			got := p.Evaluate(&Request{Action: "s3:GetObject", Resource: tt.req, Context: tt.ctx})
			if (got == Allow) != tt.want {
				t.Fatalf("got %v, want match %v", got, tt.want)
			}
		})
	}
}

func TestPolicyVariablesInConditionsAndNotResource(t *testing.T) {
	p := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b",
		 "Condition":{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}},
		{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
		 "Condition":{"StringEquals":{"s3:ExistingObjectTag/owner":"${aws:username}"}}},
		{"Effect":"Deny","Action":"s3:PutObject","NotResource":"arn:aws:s3:::b/home/${aws:username}/*"},
		{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}`)
	tests := []struct {
		name             string
		action, resource string
		ctx              map[string][]string
		want             Decision
	}{
		{"list own prefix", "s3:ListBucket", "arn:aws:s3:::b", ctx("aws:username", "alice", "s3:prefix", "home/alice/docs"), Allow},
		{"list other prefix", "s3:ListBucket", "arn:aws:s3:::b", ctx("aws:username", "alice", "s3:prefix", "home/bob/"), NotApplicable},
		{"list root", "s3:ListBucket", "arn:aws:s3:::b", ctx("aws:username", "alice", "s3:prefix", ""), Allow},
		{"list without user", "s3:ListBucket", "arn:aws:s3:::b", ctx("s3:prefix", "home/alice/x"), NotApplicable},
		{"tag owner", "s3:GetObject", "arn:aws:s3:::b/x", ctx("aws:username", "alice", "s3:ExistingObjectTag/owner", "alice"), Allow},
		{"tag other owner", "s3:GetObject", "arn:aws:s3:::b/x", ctx("aws:username", "alice", "s3:ExistingObjectTag/owner", "bob"), NotApplicable},
		{"tag without user", "s3:GetObject", "arn:aws:s3:::b/x", ctx("s3:ExistingObjectTag/owner", "${aws:username}"), NotApplicable},
		{"put own home", "s3:PutObject", "arn:aws:s3:::b/home/alice/x", ctx("aws:username", "alice"), Allow},
		{"put elsewhere", "s3:PutObject", "arn:aws:s3:::b/home/bob/x", ctx("aws:username", "alice"), Deny},
		// Unresolved, the NotResource entry excludes nothing: the deny applies.
		{"put without user", "s3:PutObject", "arn:aws:s3:::b/home/alice/x", nil, Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Evaluate(&Request{Action: tt.action, Resource: tt.resource, Context: tt.ctx}); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}

	// An unresolved value leaves a negated operator with nothing to match.
	np := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*",
		"Condition":{"StringNotEquals":{"aws:PrincipalAccount":"${aws:ResourceAccount}"}}}}`)
	if got := np.Evaluate(&Request{Action: "s3:GetObject", Resource: "*", Context: ctx("aws:PrincipalAccount", "111122223333")}); got != Deny {
		t.Fatalf("unresolved variable under StringNotEquals: %v", got)
	}
	if got := np.Evaluate(&Request{Action: "s3:GetObject", Resource: "*",
		Context: ctx("aws:PrincipalAccount", "111122223333", "aws:ResourceAccount", "111122223333")}); got != NotApplicable {
		t.Fatalf("same account: %v", got)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// evalCase is one file in testdata/evaluate: a document and requests with
// the decisions AWS's evaluation logic gives them.
type evalCase struct {
	Kind     string          `json:"kind"`
	Policy   json.RawMessage `json:"policy"`
	Requests []struct {
		Name      string              `json:"name"`
		Principal *Principal          `json:"principal"`
		Action    string              `json:"action"`
		Resource  string              `json:"resource"`
		Context   map[string][]string `json:"context"`
		Want      string              `json:"want"`
	} `json:"requests"`
}

func TestEvaluateTestdata(t *testing.T) {
	files, err := os.ReadDir("testdata/evaluate")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]Kind{"identity": Identity, "resource": Resource, "trust": Trust}
	for _, f := range files {
		t.Run(f.Name(), func(t *testing.T) {
			data, err := os.ReadFile("testdata/evaluate/" + f.Name())
			if err != nil {
				t.Fatal(err)
			}
			var c evalCase
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			kind, ok := kinds[c.Kind]
			if !ok {
				t.Fatalf("kind %q", c.Kind)
			}
			p, err := Parse(c.Policy, kind)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Requests) == 0 {
				t.Fatal("no requests")
			}
			for _, r := range c.Requests {
				got := p.Evaluate(&Request{Principal: r.Principal, Action: r.Action, Resource: r.Resource, Context: r.Context})
				if got.String() != r.Want {
					t.Errorf("%s: got %v, want %s", r.Name, got, r.Want)
				}
			}
		})
	}
}

func TestEvaluateConcurrently(t *testing.T) {
	p := mustParse(t, Identity, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*",
		"Resource":"arn:aws:s3:::b/${aws:username}/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			user := fmt.Sprint("u", i)
			for range 200 {
				got := p.Evaluate(&Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::b/" + user + "/k",
					Context: map[string][]string{"aws:username": {user}, "aws:SourceIp": {"10.1.1.1"}}})
				if got != Allow {
					t.Errorf("%s: %v", user, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkEvaluate(b *testing.B) {
	data, err := os.ReadFile("testdata/evaluate/bucket-source-ip.json")
	if err != nil {
		b.Fatal(err)
	}
	var c evalCase
	if err := json.Unmarshal(data, &c); err != nil {
		b.Fatal(err)
	}
	p, err := Parse(c.Policy, Resource)
	if err != nil {
		b.Fatal(err)
	}
	req := &Request{Principal: alice, Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/2024/01/01/app.log",
		Context: map[string][]string{"aws:SourceIp": {"192.0.2.55"}, "aws:SecureTransport": {"true"}, "aws:username": {"alice"}}}
	b.ReportAllocs()
	for b.Loop() {
		if p.Evaluate(req) != Allow {
			b.Fatal("not allowed")
		}
	}
}
