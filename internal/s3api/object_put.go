package s3api

import (
	"net/http"
	"strings"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// MaxPutSize is S3's limit for a single PutObject.
const MaxPutSize = 5 << 30

var storageClasses = map[string]bool{
	"STANDARD": true, "REDUCED_REDUNDANCY": true, "STANDARD_IA": true, "ONEZONE_IA": true,
	"INTELLIGENT_TIERING": true, "GLACIER": true, "DEEP_ARCHIVE": true, "OUTPOSTS": true,
	"GLACIER_IR": true, "SNOW": true, "EXPRESS_ONEZONE": true,
}

func (h *Handler) putObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	size := rq.auth.DecodedLength
	if size < 0 {
		return errMissingContentLength
	}
	if size > MaxPutSize {
		return errEntityTooLarge
	}
	if err := h.refuseACLHeaders(r, rq); err != nil {
		return err
	}
	cond, err := writeCondition(r)
	if err != nil {
		return err
	}
	in := &objectstore.PutInput{
		Bucket: rq.bucket, Key: rq.key, Owner: rq.principal.AccountID,
		Body: r.Body, Size: size,
		ContentType:        r.Header.Get("Content-Type"),
		ContentEncoding:    storedContentEncoding(r.Header.Get("Content-Encoding")),
		ContentDisposition: r.Header.Get("Content-Disposition"),
		ContentLanguage:    r.Header.Get("Content-Language"),
		CacheControl:       r.Header.Get("Cache-Control"),
		Expires:            r.Header.Get("Expires"),
		StorageClass:       r.Header.Get("x-amz-storage-class"),
		Metadata:           userMetadata(r.Header),
		WriteCondition:     cond,
	}
	if in.StorageClass != "" && !storageClasses[in.StorageClass] {
		return apiErr("InvalidStorageClass", 400, "The storage class you specified is not valid")
	}
	if in.StorageClass == "STANDARD" {
		in.StorageClass = ""
	}
	tags, err := taggingHeader(r, rq)
	if err != nil {
		return err
	}
	in.Tags = tags
	if md5 := r.Header.Get("Content-MD5"); md5 != "" {
		sum, err := checksum.ParseContentMD5(md5)
		if err != nil {
			return err
		}
		in.ExpectedMD5 = sum
	}
	alg, expected, err := checksumRequest(r, rq)
	if err != nil {
		return err
	}
	in.ChecksumAlgorithm, in.ExpectedChecksum = alg, expected
	v, err := h.store.PutObject(r.Context(), in)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+v.ETag+`"`)
	setVersionHeader(w, v)
	if v.ChecksumAlgorithm != "" {
		alg := checksum.Algorithm(v.ChecksumAlgorithm)
		w.Header().Set(alg.HeaderName(), v.Checksum)
		w.Header().Set("x-amz-checksum-type", "FULL_OBJECT")
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// writeCondition reads the conditional-write headers of PutObject,
// CompleteMultipartUpload and CopyObject. As in S3, If-None-Match takes only
// "*".
func writeCondition(r *http.Request) (objectstore.WriteCondition, error) {
	c := objectstore.WriteCondition{IfMatch: strings.TrimSpace(r.Header.Get("If-Match"))}
	switch inm := strings.TrimSpace(r.Header.Get("If-None-Match")); inm {
	case "":
	case "*":
		c.IfNoneMatch = true
	default:
		return c, errNotImplemented
	}
	return c, nil
}

// checksumRequest works out which additional checksum the client asked for
// and where its expected value comes from: a header now, or a trailer after
// the body.
func checksumRequest(r *http.Request, rq *request) (alg checksum.Algorithm, expected func() (string, bool), err error) {
	var found []checksum.Algorithm
	for _, a := range checksum.All() {
		if v := r.Header.Get(a.HeaderName()); v != "" {
			found = append(found, a)
			value := v
			alg, expected = a, func() (string, bool) { return value, true }
		}
	}
	errMulti := apiErr("InvalidRequest", 400, "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	if len(found) > 1 {
		return "", nil, errMulti
	}
	for _, t := range rq.auth.DeclaredTrailers {
		a, ok := checksum.AlgorithmForHeader(t)
		if !ok {
			continue
		}
		if len(found) > 0 && found[0] != a {
			return "", nil, errMulti
		}
		name := t
		return a, func() (string, bool) {
			v := rq.auth.Trailer().Get(name)
			return v, v != ""
		}, nil
	}
	if len(found) == 0 {
		if s := r.Header.Get("x-amz-sdk-checksum-algorithm"); s != "" {
			a, err := checksum.ParseAlgorithm(s)
			if err != nil {
				return "", nil, apiErr("InvalidRequest", 400, "Value for x-amz-sdk-checksum-algorithm header is invalid.")
			}
			return a, nil, nil
		}
	}
	return alg, expected, nil
}

// storedContentEncoding drops the aws-chunked transfer coding, which
// describes the request, not the object.
func storedContentEncoding(ce string) string {
	if ce == "" {
		return ""
	}
	var keep []string
	for _, part := range strings.Split(ce, ",") {
		part = strings.TrimSpace(part)
		if part != "" && !strings.EqualFold(part, "aws-chunked") {
			keep = append(keep, part)
		}
	}
	return strings.Join(keep, ",")
}

// userMetadata collects x-amz-meta-* headers, keys lower-cased as S3 returns
// them.
func userMetadata(hdr http.Header) map[string]string {
	var m map[string]string
	for k, vs := range hdr {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "x-amz-meta-") || len(lk) == len("x-amz-meta-") {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[lk[len("x-amz-meta-"):]] = strings.Join(vs, ",")
	}
	return m
}
