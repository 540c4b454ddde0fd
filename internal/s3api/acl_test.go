package s3api_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// wantOwnerACL checks an ACL as a BucketOwnerEnforced bucket shows it: the
// owner, and the owner's FULL_CONTROL as the only grant.
func wantOwnerACL(t *testing.T, who *types.Owner, grants []types.Grant) {
	t.Helper()
	if aws.ToString(who.ID) != servertest.AccountID {
		t.Fatalf("owner %q, want %s", aws.ToString(who.ID), servertest.AccountID)
	}
	if len(grants) != 1 {
		t.Fatalf("%d grants, want 1", len(grants))
	}
	g := grants[0]
	if g.Grantee == nil || g.Grantee.Type != types.TypeCanonicalUser || aws.ToString(g.Grantee.ID) != servertest.AccountID || g.Permission != types.PermissionFullControl {
		t.Fatalf("grant %+v / %+v", g, g.Grantee)
	}
}

// ownerGrant is the one grant such a bucket accepts.
func ownerGrant() types.Grant {
	return types.Grant{
		Grantee:    &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String(servertest.AccountID)},
		Permission: types.PermissionFullControl,
	}
}

func TestBucketACL(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "acls")
	b := aws.String("acls")

	got := must[*s3.GetBucketAclOutput](t)(c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: b}))
	wantOwnerACL(t, got.Owner, got.Grants)

	// The prefix of the grantee's type is declared on the element itself,
	// as S3 sends it.
	st, body, _ := do(t, r, signed(t, "GET", r.URL()+"/acls?acl", nil, "", nil))
	if st != 200 || !strings.Contains(body, `<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">`) {
		t.Fatalf("GetBucketAcl: %d %s", st, body)
	}

	for _, acl := range []types.BucketCannedACL{types.BucketCannedACLPrivate, "bucket-owner-full-control"} {
		if _, err := c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: b, ACL: acl}); err != nil {
			t.Fatalf("%s: %v", acl, err)
		}
	}
	// What GetBucketAcl returned goes back unchanged.
	must[*s3.PutBucketAclOutput](t)(c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: b, AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner, Grants: got.Grants}}))
	must[*s3.PutBucketAclOutput](t)(c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: b, AccessControlPolicy: &types.AccessControlPolicy{Grants: []types.Grant{ownerGrant()}}}))

	allUsers := types.Grant{Grantee: &types.Grantee{Type: types.TypeGroup, URI: aws.String("http://acs.amazonaws.com/groups/global/AllUsers")}, Permission: types.PermissionRead}
	other := ownerGrant()
	other.Grantee = &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String(servertest.OtherAccountID)}
	readOnly := ownerGrant()
	readOnly.Permission = types.PermissionRead
	for name, in := range map[string]*s3.PutBucketAclInput{
		"public-read":      {ACL: types.BucketCannedACLPublicRead},
		"grant header":     {GrantRead: aws.String("id=" + servertest.OtherAccountID)},
		"owner by header":  {GrantFullControl: aws.String("id=" + servertest.AccountID)},
		"group grant":      {AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner, Grants: []types.Grant{ownerGrant(), allUsers}}},
		"other account":    {AccessControlPolicy: &types.AccessControlPolicy{Grants: []types.Grant{other}}},
		"owner reads only": {AccessControlPolicy: &types.AccessControlPolicy{Grants: []types.Grant{readOnly}}},
		"no grants":        {AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner}},
	} {
		t.Run(name, func(t *testing.T) {
			in.Bucket = b
			_, err := c.PutBucketAcl(ctx, in)
			wantMessage(t, err, "AccessControlListNotSupported", 400, "The bucket does not allow ACLs")
		})
	}

	_, err := c.GetBucketAcl(ctx, &s3.GetBucketAclInput{Bucket: aws.String("nobucket")})
	wantCode(t, err, "NoSuchBucket", 404)
	_, err = c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: aws.String("nobucket"), ACL: types.BucketCannedACLPrivate})
	wantCode(t, err, "NoSuchBucket", 404)
}

func TestObjectACL(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "objacl", types.BucketVersioningStatusEnabled)
	b, k := aws.String("objacl"), aws.String("doc")
	v1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v1")}))
	gone := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v2")}))
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k, VersionId: gone.VersionId}))

	for _, vid := range []*string{nil, v1.VersionId} {
		got := must[*s3.GetObjectAclOutput](t)(c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k, VersionId: vid}))
		wantOwnerACL(t, got.Owner, got.Grants)
		must[*s3.PutObjectAclOutput](t)(c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: k, VersionId: vid, ACL: types.ObjectCannedACLBucketOwnerFullControl}))
		must[*s3.PutObjectAclOutput](t)(c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: k, VersionId: vid, AccessControlPolicy: &types.AccessControlPolicy{Owner: got.Owner, Grants: got.Grants}}))
		_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: k, VersionId: vid, ACL: types.ObjectCannedACLPublicRead})
		wantCode(t, err, "AccessControlListNotSupported", 400)
	}

	// Missing objects and versions answer as GetObject does.
	_, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: aws.String("never")})
	wantCode(t, err, "NoSuchKey", 404)
	_, err = c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k, VersionId: gone.VersionId})
	wantCode(t, err, "NoSuchVersion", 404)
	_, err = c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k, VersionId: aws.String("bogus")})
	wantCode(t, err, "InvalidArgument", 400)
	_, err = c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: aws.String("never"), ACL: types.ObjectCannedACLPrivate})
	wantCode(t, err, "NoSuchKey", 404)
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
	_, err = c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k})
	wantCode(t, err, "NoSuchKey", 404)
}

// TestNewObjectACLs checks the ACL headers of the calls that create
// objects: the owner's full control is accepted, any other grant refused.
func TestNewObjectACLs(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "newacl")
	b := aws.String("newacl")
	for _, acl := range []types.ObjectCannedACL{types.ObjectCannedACLPrivate, types.ObjectCannedACLBucketOwnerFullControl} {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("ok-" + string(acl)), Body: strings.NewReader("x"), ACL: acl}))
	}
	notSupported := func(err error) {
		t.Helper()
		wantMessage(t, err, "AccessControlListNotSupported", 400, "The bucket does not allow ACLs")
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("pub"), Body: strings.NewReader("x"), ACL: types.ObjectCannedACLPublicRead})
	notSupported(err)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("pub"), Body: strings.NewReader("x"), GrantRead: aws.String("uri=http://acs.amazonaws.com/groups/global/AllUsers")})
	notSupported(err)
	_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("pub"), ACL: types.ObjectCannedACLAuthenticatedRead})
	notSupported(err)
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("pub"), CopySource: source("newacl", "ok-private", ""), ACL: types.ObjectCannedACLPublicReadWrite})
	notSupported(err)
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("pub")})
	wantCode(t, err, "NotFound", 404)
	must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: source("newacl", "ok-private", ""), ACL: types.ObjectCannedACLBucketOwnerFullControl}))

	// A missing bucket is reported before the ACL.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nobucket"), Key: aws.String("k"), Body: strings.NewReader("x"), ACL: types.ObjectCannedACLPublicRead})
	wantCode(t, err, "NoSuchBucket", 404)
}

func TestCreateBucketWithACL(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("public-one"), ACL: types.BucketCannedACLPublicRead})
	wantCode(t, err, "InvalidBucketAclWithObjectOwnership", 400)
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("private-one"), ACL: types.BucketCannedACLPrivate}))
}
