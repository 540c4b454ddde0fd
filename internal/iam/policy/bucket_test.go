package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// bucketDoc is a policy of one statement on bucket "b" allowing everyone
// the actions on the resources, each a JSON string or array, under the
// element names given (Action or NotAction, Resource or NotResource).
func bucketDoc(actionElem, action, resourceElem, resource string) string {
	effect := "Allow"
	if actionElem == "NotAction" || resourceElem == "NotResource" {
		effect = "Deny"
	}
	return `{"Version":"2012-10-17","Statement":{"Effect":"` + effect + `","Principal":"*","` +
		actionElem + `":` + action + `,"` + resourceElem + `":` + resource + `}}`
}

func TestParseBucket(t *testing.T) {
	tests := []struct {
		action, resource string
		msg              string // "" when accepted
	}{
		{`"s3:GetObject"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::b/k"`, ""},
		{`"s3:ListBucket"`, `"arn:aws:s3:::b"`, ""},
		{`"s3:*"`, `"arn:aws:s3:::b"`, ""},
		{`"*"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:Get*"`, `"arn:aws:s3:::b"`, ""},
		{`"s3:Get*"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:*Object"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:?etObject"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:GETOBJECT"`, `"arn:aws:s3:::b/*"`, ""},
		{`"S3:GetObject"`, `"arn:aws:s3:::b/*"`, ""},
		{`"s3:TagResource"`, `"arn:aws:s3:::b"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::*"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::b*"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::b?/*"`, ""}, // the keys that start with a slash
		{`"s3:ListBucket"`, `"arn:aws:s3:::?"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::*/k"`, ""},
		{`"s3:GetObject"`, `"arn:aws:s3:::b/${aws:username}"`, ""},
		{`"s3:ListBucket"`, `"arn:aws:s3:::${aws:username}"`, ""},
		{`["s3:GetObject","s3:ListBucket"]`, `["arn:aws:s3:::b","arn:aws:s3:::b/*"]`, ""},

		{`"s3:GetObject"`, `"arn:aws:s3:::c/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3:::bb/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3:::b?"`, msgS3InvalidResource}, // an object's key is not empty
		{`"s3:GetObject"`, `"arn:aws:s3:::b/"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3:::?"`, msgS3ActionResource},
		{`"s3:GetObject"`, `"arn:aws:s3:::"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3::/b/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:*:s3:::b/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3:us-east-1:111122223333:b/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `"arn:aws:s3:::B/*"`, msgS3InvalidResource},
		{`"s3:GetObject"`, `[]`, msgS3InvalidResource},
		{`"s3:GetObject"`, `3`, msgS3InvalidResource},

		{`"iam:CreateUser"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3:"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3:Nope"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3:Nope*"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3:Get:Object"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`"s3express:CreateSession"`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`[]`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},
		{`{}`, `"arn:aws:s3:::b/*"`, msgS3InvalidAction},

		{`"s3:GetObject"`, `"arn:aws:s3:::b"`, msgS3ActionResource},
		{`"s3:ListBucket"`, `"arn:aws:s3:::b/*"`, msgS3ActionResource},
		{`"s3:PutBucket*"`, `"arn:aws:s3:::b/*"`, msgS3ActionResource},
		{`"s3:ListAllMyBuckets"`, `["arn:aws:s3:::b","arn:aws:s3:::b/*"]`, msgS3ActionResource},
		{`"s3:CreateJob"`, `"arn:aws:s3:::*"`, msgS3ActionResource},
		{`["s3:GetObject","s3:ListBucket"]`, `"arn:aws:s3:::b/*"`, msgS3ActionResource},
	}
	for _, tt := range tests {
		doc := bucketDoc("Action", tt.action, "Resource", tt.resource)
		p, err := ParseBucket([]byte(doc), "b")
		if tt.msg == "" {
			if err != nil {
				t.Errorf("%s on %s: refused: %v", tt.action, tt.resource, err)
			} else if p.Kind() != Resource {
				t.Errorf("%s on %s: kind %v", tt.action, tt.resource, p.Kind())
			}
			continue
		}
		var me *MalformedError
		if !errors.As(err, &me) || !errors.Is(err, ErrMalformed) || me.Message != tt.msg {
			t.Errorf("%s on %s: %v, want %q", tt.action, tt.resource, err, tt.msg)
		}
	}
}

// NotAction and NotResource hold S3 actions and the bucket's resources
// too, but their statements are not checked for actions that apply to no
// resource: what they leave out is not what they cover.
func TestParseBucketNotElements(t *testing.T) {
	tests := []struct {
		doc, msg string
	}{
		{bucketDoc("NotAction", `"s3:GetObject"`, "Resource", `"arn:aws:s3:::b"`), ""},
		{bucketDoc("Action", `"s3:GetObject"`, "NotResource", `"arn:aws:s3:::b"`), ""},
		{bucketDoc("NotAction", `"s3:ListBucket"`, "NotResource", `"arn:aws:s3:::b/public/*"`), ""},
		{bucketDoc("NotAction", `"iam:*"`, "Resource", `"arn:aws:s3:::b/*"`), msgS3InvalidAction},
		{bucketDoc("Action", `"s3:GetObject"`, "NotResource", `"arn:aws:s3:::c/*"`), msgS3InvalidResource},
		{bucketDoc("Action", `"s3:GetObject"`, "NotResource", `"*"`), msgS3InvalidResource},
	}
	for _, tt := range tests {
		_, err := ParseBucket([]byte(tt.doc), "b")
		var me *MalformedError
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.doc, err)
		case tt.msg != "" && (!errors.As(err, &me) || me.Message != tt.msg):
			t.Errorf("%s: %v, want %q", tt.doc, err, tt.msg)
		}
	}
}

// S3 words some refusals its own way; IAM's wording stays for Parse.
func TestParseBucketWording(t *testing.T) {
	good := `"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"`
	tests := []struct {
		doc, iam, s3 string
	}{
		{`{"Statement":[`, syntaxMessage, msgS3InvalidJSON},
		{`{"Statement":{` + good + `,"Effect":"Deny"}}`, syntaxMessage, msgS3InvalidJSON},
		{`{"Version":"2012-10-18","Statement":{` + good + `}}`, syntaxMessage, msgS3Version},
		{`{"Statement":[]}`, msgMissingStatement, msgS3EmptyStatement},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::b/*"}}`, msgNoActions, msgS3MissingElement},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}`, msgNoResources, msgS3MissingElement},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"GetObject","Resource":"arn:aws:s3:::b/*"}}`, msgVendor, msgS3InvalidAction},
		{`{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"b/*"}}`, `Resource b/* must be in ARN format or "*".`, msgS3InvalidResource},
		// The same in both.
		{`{"Version":"2012-10-17"}`, msgMissingStatement, msgMissingStatement},
		{`{"Statement":{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`, msgMissingEffect, msgMissingEffect},
		{`{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`, msgMissingPrincipal, msgMissingPrincipal},
		{`{"Statement":{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`, msgInvalidPrincipal, msgInvalidPrincipal},
		{`{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}`, "Invalid effect: Maybe", "Invalid effect: Maybe"},
		{`{"Statement":{` + good + `,"Condition":{"StringEqualz":{"aws:username":"a"}}}}`, "Invalid Condition type : StringEqualz", "Invalid Condition type : StringEqualz"},
	}
	for _, tt := range tests {
		var me *MalformedError
		if _, err := Parse([]byte(tt.doc), Resource); !errors.As(err, &me) || me.Message != tt.iam {
			t.Errorf("Parse(%s): %v, want %q", tt.doc, err, tt.iam)
		}
		if _, err := ParseBucket([]byte(tt.doc), "b"); !errors.As(err, &me) || me.Message != tt.s3 {
			t.Errorf("ParseBucket(%s): %v, want %q", tt.doc, err, tt.s3)
		}
	}
}

// A bucket policy parses to what Parse makes of it as a resource policy,
// and evaluates the same.
func TestParseBucketIsAResourcePolicy(t *testing.T) {
	doc := []byte(`{"Version":"2012-10-17","Statement":[{"Sid":"read","Effect":"Allow","Principal":{"AWS":"111122223333"},
		"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/${aws:username}/*"]}]}`)
	bp, err := ParseBucket(doc, "b")
	if err != nil {
		t.Fatal(err)
	}
	rp := mustParse(t, Resource, string(doc))
	if !reflect.DeepEqual(bp, rp) {
		t.Fatalf("ParseBucket %+v, Parse %+v", bp, rp)
	}
	req := &Request{Principal: alice, Action: "s3:GetObject", Resource: "arn:aws:s3:::b/alice/k", Context: map[string][]string{"aws:username": {"alice"}}}
	if got := bp.Evaluate(req); got != Allow {
		t.Fatalf("Evaluate: %v", got)
	}
	if _, err := ParseBucket(doc, ""); err == nil || errors.Is(err, ErrMalformed) {
		t.Fatalf("no bucket: %v", err)
	}
}

func TestMatchesSomeWithPrefix(t *testing.T) {
	tests := []struct {
		pattern, prefix string
		want            bool
	}{
		{"b/*", "b/", true},
		{"b/k", "b/", true},
		{"b", "b/", false},
		{"b*", "b/", true},
		{"*", "b/", true},
		{"", "b/", false},
		{"", "", false},
		{"*", "", true},
		{"?/", "b/", false},
		{"?/*", "b/", true},
		{"??/", "b/", true}, // "b//"
		{"b/", "b/", false},
		{"b/?", "b/", true},
		{"*b/x", "ab/", true},
		{"a*c/d", "abc/", true},
		{"a*c/d", "ab/", true}, // "ab/c/d"
		{"a?c", "ab/", false},
		{"a", "", true},
		{"ab", "abc", false},
	}
	for _, tt := range tests {
		p := resourcePattern(tt.pattern, false)
		if got := p.matchesSomeWithPrefix(tt.prefix); got != tt.want {
			t.Errorf("%q with prefix %q: %v, want %v", tt.pattern, tt.prefix, got, tt.want)
		}
	}
	// A policy variable may be anything; its escapes are literals.
	if !resourcePattern("b/${aws:username}", true).matchesSomeWithPrefix("b/") ||
		resourcePattern("${*}/k", true).matchesSomeWithPrefix("b/") ||
		!resourcePattern("${*}/k", true).match("*/k", false) {
		t.Fatal("policy variables")
	}
	if got := resourcePattern("b/${aws:username}", false).String(); got != "b/${aws:username}" || !strings.Contains(got, "$") {
		t.Fatalf("without variables: %q", got)
	}
}

func FuzzParseBucket(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s), "b")
	}
	f.Add([]byte(bucketDoc("Action", `["s3:Get*","s3:ListBucket"]`, "Resource", `["arn:aws:s3:::b","arn:aws:s3:::b*/k"]`)), "b")
	f.Add([]byte(bucketDoc("NotAction", `"s3:*"`, "NotResource", `"arn:aws:s3:::${aws:username}/*"`)), "bucket")
	f.Fuzz(func(t *testing.T, doc []byte, bucket string) {
		if bucket == "" || len(bucket) > 63 {
			return // not a bucket name
		}
		p, err := ParseBucket(doc, bucket)
		if err != nil {
			var me *MalformedError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &me) || me.Message == "" {
				t.Fatalf("error %v is not a MalformedError", err)
			}
			return
		}
		// S3 checks more than a resource policy needs: what it accepts,
		// Parse accepts as the same policy.
		rp, err := Parse(doc, Resource)
		if err != nil {
			t.Fatalf("ParseBucket accepted what Parse refuses: %v", err)
		}
		if !reflect.DeepEqual(p, rp) {
			t.Fatalf("ParseBucket %+v, Parse %+v", p, rp)
		}
	})
}
