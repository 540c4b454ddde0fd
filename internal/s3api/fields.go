package s3api

import (
	"net/http"
	"strings"
)

// Every header and query parameter that AWS's model gives an operation
// Bulwark implements is in requestFields, with what Bulwark does with it:
// honours it as AWS does, refuses the request while the feature it asks
// for is not built, or accepts it to no effect for a reason that promises
// nothing false. A request for protection (encryption, retention, a legal
// hold, a condition, a checksum, an expected owner) is never silently
// dropped: storing an object "encrypted" or "locked" when it is not is
// the false confidence a backup system exists to prevent.
// TestRequestFieldsCoverTheModel walks botocore's S3 model and fails on
// a field of an implemented operation that is not listed here.

type fieldUse int

const (
	honoured fieldUse = iota + 1
	refused
	ignored
)

// fieldRule is what Bulwark does with one request field.
type fieldRule struct {
	use fieldUse
	// why says, for an ignored field, why accepting it without effect is
	// true to what the client asked.
	why string
	// refuse, for a refused field, returns the error for operation op
	// with the field's value v, or nil when v asks for nothing missing.
	refuse func(op, v string) error
}

func honour() fieldRule                           { return fieldRule{use: honoured} }
func ignore(why string) fieldRule                 { return fieldRule{use: ignored, why: why} }
func refuse(f func(op, v string) error) fieldRule { return fieldRule{use: refused, refuse: f} }

// Refusals, with the codes AWS uses: NotImplemented is AWS's own answer
// to "a header you provided implies functionality that is not
// implemented"; where AWS has a more precise answer for the state every
// Bulwark bucket is in (no Object Lock configuration, no object
// encrypted with a customer key), that answer.
var (
	refuseSSE = func(_, v string) error {
		return errf("NotImplemented", 501,
			"Server-side encryption (%s) is not supported yet: the object would be stored unencrypted, so the request is refused.", v)
	}
	refuseSSEKMS = func(_, _ string) error {
		return apiErr("NotImplemented", 501,
			"SSE-KMS is not supported: Bulwark has no key management service; the request is refused rather than stored unencrypted.")
	}
	refuseBucketKey = func(op, v string) error {
		if strings.EqualFold(v, "false") {
			return nil
		}
		return refuseSSEKMS(op, v)
	}
	// SSE-C on a read names a key for an object that was not written with
	// one: AWS's answer for that object. On a write it asks for
	// encryption Bulwark does not do yet.
	refuseSSEC = func(op, _ string) error {
		switch op {
		case "GetObject", "HeadObject", "GetObjectAttributes":
			return apiErr("InvalidRequest", 400, "The encryption parameters are not applicable to this object.")
		}
		return apiErr("NotImplemented", 501,
			"Server-side encryption with customer-provided keys (SSE-C) is not supported yet: the object would be stored unencrypted, so the request is refused.")
	}
	refuseCopySourceSSEC = func(_, _ string) error {
		return apiErr("InvalidRequest", 400, "The encryption parameters are not applicable to this object.")
	}
	// No bucket has an Object Lock configuration yet: AWS's answer to a
	// retention or legal hold on such a bucket.
	refuseObjectLock = func(_, _ string) error {
		return apiErr("InvalidRequest", 400, "Bucket is missing Object Lock Configuration")
	}
	refuseBucketObjectLock = func(_, v string) error {
		if strings.EqualFold(v, "false") {
			return nil
		}
		return apiErr("NotImplemented", 501,
			"Object Lock is not supported yet: the bucket would be created without it, so the request is refused.")
	}
	refuseOwnership = func(_, v string) error {
		if v == "BucketOwnerEnforced" {
			return nil
		}
		return errf("NotImplemented", 501,
			"Object ownership %s needs ACLs, which are not supported yet; buckets are BucketOwnerEnforced.", v)
	}
	refuseNotBuilt = func(what string) func(op, v string) error {
		return func(_, _ string) error {
			return errf("NotImplemented", 501, "%s is not supported yet; the request is refused rather than carried out without it.", what)
		}
	}
	refuseChecksum = func(name string) func(op, v string) error {
		return func(_, _ string) error {
			return errf("NotImplemented", 501,
				"The %s checksum algorithm is not supported yet (CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 are); the request is refused rather than stored unchecked.", name)
		}
	}
)

// requestFields is keyed by the field's lower-cased header name, or its
// query parameter name (no S3 header and parameter share a name);
// "x-amz-meta-" stands for every user metadata header.
var requestFields = map[string]fieldRule{
	// Object content and its description.
	"cache-control": honour(), "content-disposition": honour(), "content-encoding": honour(),
	"content-language": honour(), "content-length": honour(), "content-type": honour(),
	"expires": honour(), "x-amz-meta-": honour(), "x-amz-storage-class": honour(),
	"x-amz-tagging": honour(), "x-amz-tagging-directive": honour(), "x-amz-metadata-directive": honour(),
	"x-amz-website-redirect-location": ignore("buckets are not served as websites, so there is no redirect to make; the value is not kept"),

	// Integrity.
	"content-md5": honour(), "x-amz-sdk-checksum-algorithm": honour(), "x-amz-checksum-algorithm": honour(),
	"x-amz-checksum-type": honour(), "x-amz-checksum-mode": honour(),
	"x-amz-checksum-crc32": honour(), "x-amz-checksum-crc32c": honour(), "x-amz-checksum-crc64nvme": honour(),
	"x-amz-checksum-sha1": honour(), "x-amz-checksum-sha256": honour(),
	"x-amz-checksum-md5":       refuse(refuseChecksum("MD5")),
	"x-amz-checksum-sha512":    refuse(refuseChecksum("SHA512")),
	"x-amz-checksum-xxhash64":  refuse(refuseChecksum("XXHASH64")),
	"x-amz-checksum-xxhash3":   refuse(refuseChecksum("XXHASH3")),
	"x-amz-checksum-xxhash128": refuse(refuseChecksum("XXHASH128")),
	"x-amz-mp-object-size":     refuse(refuseNotBuilt("Checking a multipart upload's total size (x-amz-mp-object-size)")),

	// Conditions.
	"if-match": honour(), "if-none-match": honour(), "if-modified-since": honour(), "if-unmodified-since": honour(),
	"x-amz-copy-source-if-match": honour(), "x-amz-copy-source-if-none-match": honour(),
	"x-amz-copy-source-if-modified-since": honour(), "x-amz-copy-source-if-unmodified-since": honour(),
	"x-amz-if-match-last-modified-time": refuse(refuseNotBuilt("A conditional delete (x-amz-if-match-last-modified-time)")),
	"x-amz-if-match-size":               refuse(refuseNotBuilt("A conditional delete (x-amz-if-match-size)")),
	"x-amz-if-match-initiated-time":     refuse(refuseNotBuilt("A conditional abort (x-amz-if-match-initiated-time)")),
	"x-amz-write-offset-bytes":          refuse(refuseNotBuilt("Appending to an object (x-amz-write-offset-bytes)")),

	// Ownership and access.
	"x-amz-expected-bucket-owner":        honour(),
	"x-amz-source-expected-bucket-owner": honour(),
	"x-amz-acl":                          honour(), "x-amz-grant-full-control": honour(), "x-amz-grant-read": honour(),
	"x-amz-grant-read-acp": honour(), "x-amz-grant-write": honour(), "x-amz-grant-write-acp": honour(),
	"x-amz-object-ownership":                  refuse(refuseOwnership),
	"x-amz-confirm-remove-self-bucket-access": ignore("a bucket's owner can always change its policy (its root user is never locked out), so there is no lock-out to confirm"),
	"x-amz-request-payer":                     ignore("no bucket is Requester Pays; the bucket owner pays, which needs no confirmation"),
	"x-amz-mfa":                               ignore("no bucket has MFA delete (enabling it is refused), so no request needs an MFA code"),
	"x-amz-bypass-governance-retention":       ignore("no object is under governance retention (Object Lock requests are refused), so there is nothing to bypass"),
	"x-amz-bucket-namespace": refuse(func(_, v string) error {
		if v == "global" {
			return nil
		}
		return errf("NotImplemented", 501, "The %s bucket namespace is not supported; bucket names are global.", v)
	}),

	// Encryption.
	"x-amz-server-side-encryption":                                refuse(refuseSSE),
	"x-amz-server-side-encryption-aws-kms-key-id":                 refuse(refuseSSEKMS),
	"x-amz-server-side-encryption-context":                        refuse(refuseSSEKMS),
	"x-amz-server-side-encryption-bucket-key-enabled":             refuse(refuseBucketKey),
	"x-amz-server-side-encryption-customer-algorithm":             refuse(refuseSSEC),
	"x-amz-server-side-encryption-customer-key":                   refuse(refuseSSEC),
	"x-amz-server-side-encryption-customer-key-md5":               refuse(refuseSSEC),
	"x-amz-copy-source-server-side-encryption-customer-algorithm": refuse(refuseCopySourceSSEC),
	"x-amz-copy-source-server-side-encryption-customer-key":       refuse(refuseCopySourceSSEC),
	"x-amz-copy-source-server-side-encryption-customer-key-md5":   refuse(refuseCopySourceSSEC),

	// Retention.
	"x-amz-object-lock-mode":              refuse(refuseObjectLock),
	"x-amz-object-lock-retain-until-date": refuse(refuseObjectLock),
	"x-amz-object-lock-legal-hold":        refuse(refuseObjectLock),
	"x-amz-bucket-object-lock-enabled":    refuse(refuseBucketObjectLock),
	"x-amz-bucket-object-lock-token":      ignore("the token unlocks replication settings of a bucket with Object Lock, and no bucket has it"),

	// Copies, parts, listings.
	"x-amz-copy-source": honour(), "x-amz-copy-source-range": honour(),
	"partnumber": honour(), "uploadid": honour(), "versionid": honour(), "range": honour(),
	"x-amz-object-attributes": honour(), "x-amz-max-parts": honour(), "x-amz-part-number-marker": honour(),
	"max-parts": honour(), "part-number-marker": honour(), "max-uploads": honour(), "upload-id-marker": honour(),
	"prefix": honour(), "delimiter": honour(), "encoding-type": honour(), "marker": honour(), "max-keys": honour(),
	"continuation-token": honour(), "start-after": honour(), "fetch-owner": honour(),
	"key-marker": honour(), "version-id-marker": honour(),
	"bucket-region": honour(), "max-buckets": honour(),
	"x-amz-optional-object-attributes": ignore("the only optional attribute, RestoreStatus, is for archived objects, and no object is archived"),
	"response-cache-control":           honour(), "response-content-disposition": honour(), "response-content-encoding": honour(),
	"response-content-language": honour(), "response-content-type": honour(), "response-expires": honour(),
}

// requestFieldsOf overrides requestFields for one operation.
var requestFieldsOf = map[string]map[string]fieldRule{
	// AWS's conditional DeleteObject is not built: a delete that asked to
	// be conditional must not run unconditionally.
	"DeleteObject": {"if-match": refuse(refuseNotBuilt("A conditional delete (If-Match)"))},
}

// fieldRuleOf returns what op does with a field, and whether it is listed.
func fieldRuleOf(op, name string) (fieldRule, bool) {
	if rule, ok := requestFieldsOf[op][name]; ok {
		return rule, true
	}
	rule, ok := requestFields[name]
	return rule, ok
}

// refusedHeaders are the headers some value of which some operation
// refuses, looked at on every request.
var refusedHeaders = func() []string {
	var out []string
	add := func(fields map[string]fieldRule) {
		for name, rule := range fields {
			if rule.use == refused {
				out = append(out, name)
			}
		}
	}
	add(requestFields)
	for _, fields := range requestFieldsOf {
		add(fields)
	}
	return out
}()

// refuseUnsupported refuses a request that asks for what Bulwark does not
// do, before anything is read or written.
func refuseUnsupported(r *http.Request, op string) error {
	if strings.HasPrefix(op, "Replicate") {
		return nil // a replica write carries its source's description, not a client's request
	}
	for _, name := range refusedHeaders {
		vs, ok := r.Header[http.CanonicalHeaderKey(name)]
		if !ok {
			continue
		}
		rule, _ := fieldRuleOf(op, name)
		if rule.use != refused {
			continue
		}
		v := ""
		if len(vs) > 0 {
			v = vs[0]
		}
		if err := rule.refuse(op, v); err != nil {
			return err
		}
	}
	return nil
}

// checkExpectedOwners answers AccessDenied when the request names an
// expected owner (x-amz-expected-bucket-owner, and for a copy
// x-amz-source-expected-bucket-owner) that does not own the bucket: it is
// how a caller makes sure it does not write into, or read from, a bucket
// that changed hands. A bucket that does not exist is left to the
// operation, which answers NoSuchBucket.
func (h *Handler) checkExpectedOwners(r *http.Request, rq *request) error {
	check := func(bucket, expected string) error {
		if expected == "" || bucket == "" {
			return nil
		}
		b, err := h.store.Bucket(r.Context(), bucket)
		if err != nil || b.Owner == expected {
			return nil
		}
		return errAccessDenied
	}
	if err := check(rq.bucket, r.Header.Get("x-amz-expected-bucket-owner")); err != nil {
		return err
	}
	if src := r.Header.Get("x-amz-copy-source"); src != "" {
		if cs, err := parseCopySource(src); err == nil {
			return check(cs.bucket, r.Header.Get("x-amz-source-expected-bucket-owner"))
		}
	}
	return nil
}
