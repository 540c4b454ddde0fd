package s3api

import (
	"context"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
)

// authorize asks the authorizer whether the request's principal may do
// the operation's action on its resource, with the bucket's owner and
// policy and the condition keys S3 defines. DeleteObjects is decided key
// by key, as in S3.
func (h *Handler) authorize(r *http.Request, rq *request) error {
	rq.cond = conditionKeys(r, rq)
	if rq.op == "DeleteObjects" {
		// The keys are checked one by one. A caller from outside the
		// bucket's account can be let in only by its policy: without one,
		// the whole call is refused at once.
		b, err := h.store.Bucket(r.Context(), rq.bucket)
		if err == nil && len(b.Policy) == 0 && (rq.principal == nil || rq.principal.AccountID != b.Owner) {
			return h.authz.Authorize(r.Context(), h.accessRequest(r.Context(), rq, "s3:DeleteObject", rq.bucket, "", ""))
		}
		return nil
	}
	action := "s3:" + actionFor(rq.op, rq.query.Get("versionId") != "")
	areq := h.accessRequest(r.Context(), rq, action, rq.bucket, rq.key, rq.query.Get("versionId"))
	rq.authzReq = areq
	if policyOps[rq.op] && rq.principal != nil && rq.principal.Root() && rq.principal.AccountID == areq.ResourceOwner {
		// As in S3, the bucket owner's root user may always read, replace
		// and delete the bucket's policy, whatever the policy says: a
		// policy that denies everyone cannot lock its bucket for good.
		return nil
	}
	return h.authz.Authorize(r.Context(), areq)
}

// policyOps are the operations on a bucket's policy.
var policyOps = map[string]bool{"GetBucketPolicy": true, "PutBucketPolicy": true, "DeleteBucketPolicy": true}

// accessRequest is the authorization question for action on a bucket or
// object: the principal, the bucket's owner and policy, the request's
// condition keys, and the object's tags where a policy may test them.
func (h *Handler) accessRequest(ctx context.Context, rq *request, action, bucket, key, versionID string) *iam.Request {
	areq := &iam.Request{Principal: rq.principal, Action: action, Resource: resourceARN(bucket, key), Context: maps.Clone(rq.cond)}
	if areq.Context == nil {
		areq.Context = map[string][]string{}
	}
	if bucket == "" || rq.op == "CreateBucket" && bucket == rq.bucket {
		return areq
	}
	// A missing bucket has no owner; the operation then answers
	// NoSuchBucket, as S3 does.
	b, err := h.store.Bucket(ctx, bucket)
	if err != nil {
		return areq
	}
	areq.ResourceOwner = b.Owner
	if len(b.Policy) > 0 {
		areq.ResourcePolicy, areq.ResourcePolicyKind = b.Policy, iam.ResourceKind
	}
	if key != "" && h.needsObjectTags(rq, b.Policy) {
		if v, err := h.store.HeadObject(ctx, bucket, key, versionID); err == nil {
			for k, val := range v.Tags {
				areq.Context["s3:ExistingObjectTag/"+k] = []string{val}
			}
		}
	}
	return areq
}

// authorizeAlso checks one more action on the request's resource, with the
// same principal, owner, policy and condition keys.
func (h *Handler) authorizeAlso(r *http.Request, rq *request, action string) error {
	if rq.authzReq == nil {
		return h.authorize(r, rq)
	}
	areq := *rq.authzReq
	areq.Action = action
	return h.authz.Authorize(r.Context(), &areq)
}

// needsObjectTags tells whether a policy may look at the object's tags:
// the bucket policy names them, or the principal has policies of its own
// (the root user needs none).
func (h *Handler) needsObjectTags(rq *request, bucketPolicy []byte) bool {
	if strings.Contains(string(bucketPolicy), "ExistingObjectTag") {
		return true
	}
	return rq.principal != nil && !rq.principal.Root()
}

// conditionKeys are the global and S3 condition keys of a request.
func conditionKeys(r *http.Request, rq *request) map[string][]string {
	now := time.Now().UTC()
	c := map[string][]string{
		"aws:CurrentTime":     {now.Format(time.RFC3339)},
		"aws:EpochTime":       {strconv.FormatInt(now.Unix(), 10)},
		"aws:SecureTransport": {strconv.FormatBool(r.TLS != nil)},
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		c["aws:SourceIp"] = []string{host}
	}
	if ua := r.UserAgent(); ua != "" {
		c["aws:UserAgent"] = []string{ua}
	}
	if rq.auth != nil && rq.auth.SessionToken != "" {
		c["aws:MultiFactorAuthPresent"] = []string{"false"}
	}
	q := rq.query
	for _, k := range []string{"prefix", "delimiter", "max-keys", "versionid"} {
		for qk, v := range q {
			if strings.EqualFold(qk, k) && len(v) > 0 {
				c["s3:"+k] = []string{v[0]}
			}
		}
	}
	for _, hk := range []string{"x-amz-acl", "x-amz-storage-class", "x-amz-server-side-encryption", "x-amz-copy-source", "x-amz-metadata-directive", "x-amz-content-sha256"} {
		if v := r.Header.Get(hk); v != "" {
			c["s3:"+hk] = []string{v}
		}
	}
	if rq.auth != nil {
		c["s3:signatureversion"] = []string{"AWS4-HMAC-SHA256"}
		if rq.auth.Presigned {
			c["s3:authType"] = []string{"REST-QUERY-STRING"}
		} else {
			c["s3:authType"] = []string{"REST-HEADER"}
		}
	}
	return c
}
