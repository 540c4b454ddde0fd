package s3api_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// bucketPolicy is a bucket policy of one statement with the given members,
// each a JSON member such as `"Effect":"Allow"`, at Version 2012-10-17.
func bucketPolicy(members ...string) string {
	return `{"Version":"2012-10-17","Statement":[{` + strings.Join(members, ",") + `}]}`
}

// Members of the statements below.
const (
	allow     = `"Effect":"Allow"`
	deny      = `"Effect":"Deny"`
	anyone    = `"Principal":"*"`
	getObject = `"Action":"s3:GetObject"`
	objects   = `"Resource":"arn:aws:s3:::mine/*"`
	theBucket = `"Resource":"arn:aws:s3:::mine"`
)

// TestBucketPolicyRefused puts the policies S3 refuses on the bucket
// "mine", each with S3's code and message, and checks that the policy
// stored before is still the bucket's.
func TestBucketPolicyRefused(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "mine")
	createBucket(t, c, "other-bucket")
	stored := bucketPolicy(allow, anyone, getObject, objects)
	must[*s3.PutBucketPolicyOutput](t)(c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("mine"), Policy: aws.String(stored)}))

	const (
		invalidResource = "Policy has invalid resource"
		invalidAction   = "Policy has invalid action"
		doesNotApply    = "Action does not apply to any resource(s) in statement"
		missingElement  = "Statement is missing required element"
	)
	cases := []struct {
		name, doc, msg string
	}{
		// Resources must be the bucket or objects in it.
		{"another bucket's objects", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:s3:::other-bucket/*"`), invalidResource},
		{"another bucket", bucketPolicy(allow, anyone, `"Action":"s3:ListBucket"`, `"Resource":"arn:aws:s3:::other-bucket"`), invalidResource},
		{"a bucket whose name starts with the bucket's", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:s3:::mine-logs/*"`), invalidResource},
		{"one resource of two elsewhere", bucketPolicy(allow, anyone, getObject, `"Resource":["arn:aws:s3:::mine/*","arn:aws:s3:::other-bucket/*"]`), invalidResource},
		{"a wildcard that cannot reach the bucket", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:s3:::other-*/*"`), invalidResource},
		{"any resource", bucketPolicy(allow, anyone, getObject, `"Resource":"*"`), invalidResource},
		{"not an ARN", bucketPolicy(allow, anyone, getObject, `"Resource":"mine/*"`), invalidResource},
		{"another service's ARN", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:sqs:us-west-2:111122223333:queue"`), invalidResource},
		{"no bucket in the ARN", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:s3:::"`), invalidResource},
		{"empty resource list", bucketPolicy(allow, anyone, getObject, `"Resource":[]`), invalidResource},
		{"another bucket in NotResource", bucketPolicy(deny, anyone, getObject, `"NotResource":"arn:aws:s3:::other-bucket/*"`), invalidResource},
		// Actions must be S3's.
		{"an IAM action", bucketPolicy(allow, anyone, `"Action":"iam:CreateUser"`, objects), invalidAction},
		{"an IAM action among S3 ones", bucketPolicy(allow, anyone, `"Action":["s3:GetObject","iam:CreateUser"]`, objects), invalidAction},
		{"an action without a service", bucketPolicy(allow, anyone, `"Action":"GetObject"`, objects), invalidAction},
		{"an S3 action that does not exist", bucketPolicy(allow, anyone, `"Action":"s3:ListObjects"`, theBucket), invalidAction},
		{"a wildcard matching no S3 action", bucketPolicy(allow, anyone, `"Action":"s3:Frobnicate*"`, objects), invalidAction},
		{"two colons", bucketPolicy(allow, anyone, `"Action":"s3:Get:Object"`, objects), invalidAction},
		{"empty action list", bucketPolicy(allow, anyone, `"Action":[]`, objects), invalidAction},
		{"another service's action in NotAction", bucketPolicy(deny, anyone, `"NotAction":"iam:*"`, objects), invalidAction},
		// Each action must apply to a resource of its statement.
		{"an object action on the bucket", bucketPolicy(allow, anyone, getObject, theBucket), doesNotApply},
		{"a bucket action on objects", bucketPolicy(allow, anyone, `"Action":"s3:ListBucket"`, objects), doesNotApply},
		{"one action of two without its resource", bucketPolicy(allow, anyone, `"Action":["s3:GetObject","s3:GetBucketAcl"]`, objects), doesNotApply},
		{"an account action", bucketPolicy(allow, anyone, `"Action":"s3:ListAllMyBuckets"`, `"Resource":["arn:aws:s3:::mine","arn:aws:s3:::mine/*"]`), doesNotApply},
		// Required elements.
		{"no Statement", `{"Version":"2012-10-17"}`, "Missing required field Statement"},
		{"empty Statement", `{"Version":"2012-10-17","Statement":[]}`, "Could not parse the policy: Statement is empty!"},
		{"no Effect", bucketPolicy(anyone, getObject, objects), "Missing required field Effect"},
		{"no Principal", bucketPolicy(allow, getObject, objects), "Missing required field Principal"},
		{"no Action", bucketPolicy(allow, anyone, objects), missingElement},
		{"no Resource", bucketPolicy(allow, anyone, getObject), missingElement},
		// Values S3 does not know.
		{"an Effect of neither Allow nor Deny", bucketPolicy(`"Effect":"Permit"`, anyone, getObject, objects), "Invalid effect: Permit"},
		{"a principal that is a user name", bucketPolicy(allow, `"Principal":{"AWS":"alice"}`, getObject, objects), "Invalid principal in policy"},
		{"a principal that is a bare ARN", bucketPolicy(allow, `"Principal":"arn:aws:iam::111122223333:root"`, getObject, objects), "Invalid principal in policy"},
		{"an unknown principal type", bucketPolicy(allow, `"Principal":{"Users":"111122223333"}`, getObject, objects), "Invalid principal in policy"},
		{"NotPrincipal with Allow", bucketPolicy(allow, `"NotPrincipal":{"AWS":"111122223333"}`, getObject, objects), "NotPrincipal may only be used with Effect Deny."},
		{"an unknown condition operator", bucketPolicy(allow, anyone, getObject, objects, `"Condition":{"StringEqualz":{"aws:SourceIp":"10.0.0.1"}}`), "Invalid Condition type : StringEqualz"},
		{"a version that is not a policy language's", `{"Version":"2012-10-18","Statement":[{` + allow + `,` + anyone + `,` + getObject + `,` + objects + `}]}`, "The policy must contain a valid version string"},
		{"broken JSON", `{"Version":"2012-10-17","Statement":[`, "This policy contains invalid Json"},
		{"not an object", `["Version"]`, "Policies must be valid JSON and the first byte must be '{'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("mine"), Policy: aws.String(tc.doc)})
			wantMessage(t, err, "MalformedPolicy", 400, tc.msg)
			got := must[*s3.GetBucketPolicyOutput](t)(c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("mine")}))
			if aws.ToString(got.Policy) != stored {
				t.Fatalf("stored policy after the refusal: %s", aws.ToString(got.Policy))
			}
		})
	}
}

// TestBucketPolicyAccepted puts the policies S3 takes, wildcards and
// policy variables included, and reads each back as it was sent.
func TestBucketPolicyAccepted(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "mine")
	docs := []struct{ name, doc string }{
		{"bucket and objects", bucketPolicy(allow, `"Principal":{"AWS":"arn:aws:iam::444455556666:root"}`,
			`"Action":["s3:GetObject","s3:ListBucket"]`, `"Resource":["arn:aws:s3:::mine","arn:aws:s3:::mine/*"]`)},
		{"a wildcard reaching the bucket and its objects", bucketPolicy(allow, anyone, `"Action":"s3:*"`, `"Resource":"arn:aws:s3:::mine*"`)},
		{"every bucket", bucketPolicy(deny, `"Principal":{"AWS":"444455556666"}`, `"Action":"*"`, `"Resource":"arn:aws:s3:::*"`)},
		{"a one-character wildcard", bucketPolicy(allow, anyone, `"Action":"s3:Get*"`, `"Resource":"arn:aws:s3:::mi?e/*"`)},
		{"a wildcard in the key", bucketPolicy(allow, anyone, getObject, `"Resource":"arn:aws:s3:::mine/*/public/*"`)},
		{"an action wildcard on the bucket", bucketPolicy(allow, anyone, `"Action":"s3:Get*"`, theBucket)},
		{"a policy variable", bucketPolicy(allow, `"Principal":{"AWS":"111122223333"}`, `"Action":"s3:PutObject"`, `"Resource":"arn:aws:s3:::mine/home/${aws:username}/*"`)},
		{"actions in any case", bucketPolicy(allow, anyone, `"Action":["s3:getobject","S3:GetObjectVersion"]`, objects)},
		{"NotAction", bucketPolicy(deny, anyone, `"NotAction":["s3:GetObject","s3:ListBucket"]`, objects)},
		{"NotResource", bucketPolicy(deny, anyone, getObject, `"NotResource":"arn:aws:s3:::mine/public/*"`)},
		{"NotPrincipal with Deny", bucketPolicy(deny, `"NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"}`, `"Action":"s3:DeleteObject"`, objects)},
		{"a service principal and condition", bucketPolicy(`"Sid":"Allow replication, from prod"`, allow, `"Principal":{"Service":"s3.amazonaws.com"}`, `"Action":["s3:ReplicateObject","s3:ReplicateDelete"]`, objects, `"Condition":{"StringEquals":{"aws:SourceAccount":"111122223333"},"ArnLike":{"aws:SourceArn":"arn:aws:s3:::*"}}`)},
		{"Version 2008-10-17", `{"Version":"2008-10-17","Statement":[{` + allow + `,` + anyone + `,` + getObject + `,` + objects + `}]}`},
		{"no Version", `{"Statement":{` + allow + `,` + anyone + `,` + getObject + `,` + objects + `}}`},
	}
	for _, tc := range docs {
		t.Run(tc.name, func(t *testing.T) {
			must[*s3.PutBucketPolicyOutput](t)(c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("mine"), Policy: aws.String(tc.doc)}))
			got := must[*s3.GetBucketPolicyOutput](t)(c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("mine")}))
			if aws.ToString(got.Policy) != tc.doc {
				t.Fatalf("stored %s, want %s", aws.ToString(got.Policy), tc.doc)
			}
		})
	}
}
