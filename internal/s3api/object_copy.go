package s3api

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// copySource is the object an x-amz-copy-source header names.
type copySource struct {
	bucket, key, versionID string
}

var errBadCopySource = apiErr("InvalidArgument", 400, "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")

// parseCopySource reads x-amz-copy-source: "[/]bucket/key[?versionId=id]",
// the bucket and key URL-encoded.
func parseCopySource(header string) (copySource, error) {
	path, query, _ := strings.Cut(header, "?")
	path, err := url.PathUnescape(path)
	if err != nil {
		return copySource{}, errBadCopySource
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if bucket == "" || key == "" {
		return copySource{}, errBadCopySource
	}
	src := copySource{bucket: bucket, key: key}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return copySource{}, errBadCopySource
		}
		src.versionID = q.Get("versionId")
		if q.Has("versionId") && src.versionID == "" {
			return copySource{}, apiErr("InvalidArgument", 400, "Version id cannot be the empty string")
		}
	}
	return src, nil
}

// authorizeCopySource checks that the caller may read the source of a copy:
// s3:GetObject, or s3:GetObjectVersion when a version is named, against the
// owner of the source bucket. ServeHTTP has already authorized the write.
func (h *Handler) authorizeCopySource(ctx context.Context, rq *request, src copySource) error {
	action := "s3:GetObject"
	if src.versionID != "" {
		action = "s3:GetObjectVersion"
	}
	return h.authz.Authorize(ctx, h.accessRequest(ctx, rq, action, src.bucket, src.key, src.versionID))
}

// copyConditions evaluates the x-amz-copy-source-if-* headers as the plain
// conditional headers of a GET are evaluated, except that every failure is
// 412, as S3 answers a copy.
func copyConditions(r *http.Request) func(*objectstore.Version) error {
	hdr := http.Header{}
	for from, to := range map[string]string{
		"x-amz-copy-source-if-match":            "If-Match",
		"x-amz-copy-source-if-none-match":       "If-None-Match",
		"x-amz-copy-source-if-modified-since":   "If-Modified-Since",
		"x-amz-copy-source-if-unmodified-since": "If-Unmodified-Since",
	} {
		if v := r.Header.Get(from); v != "" {
			hdr.Set(to, v)
		}
	}
	if len(hdr) == 0 {
		return nil
	}
	cond := &http.Request{Header: hdr}
	return func(v *objectstore.Version) error {
		if checkConditions(cond, v) != 0 {
			return errPreconditionFailed
		}
		return nil
	}
}

// directive reads x-amz-metadata-directive or x-amz-tagging-directive:
// COPY (the default) or REPLACE.
func directive(r *http.Request, header, what string) (replace bool, err error) {
	switch r.Header.Get(header) {
	case "", "COPY":
		return false, nil
	case "REPLACE":
		return true, nil
	}
	return false, errf("InvalidArgument", 400, "Unknown %s directive.", what)
}

type copyObjectResult struct {
	XMLName      xml.Name `xml:"CopyObjectResult"`
	ETag         string   `xml:"ETag"`
	LastModified string   `xml:"LastModified"`
	ChecksumType string   `xml:"ChecksumType,omitempty"`
	checksumFields
}

func (h *Handler) copyObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	in, err := h.copyInput(r, rq)
	if err != nil {
		return err
	}
	v, src, err := h.store.CopyObject(r.Context(), in)
	if err != nil {
		return err
	}
	setVersionHeader(w, v)
	if !src.Null || src.BucketVersioned {
		w.Header().Set("x-amz-copy-source-version-id", src.VersionID)
	}
	res := copyObjectResult{ETag: `"` + v.ETag + `"`, LastModified: xmlTime(v.LastModified)}
	if v.ChecksumAlgorithm != "" {
		res.ChecksumType = v.ChecksumKind()
		res.set(v.ChecksumAlgorithm, v.Checksum)
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// copyInput checks a CopyObject request and translates it for the store:
// the source and the caller's right to read it, the directives, and the
// attributes of the new version.
func (h *Handler) copyInput(r *http.Request, rq *request) (*objectstore.CopyInput, error) {
	src, err := parseCopySource(r.Header.Get("x-amz-copy-source"))
	if err != nil {
		return nil, err
	}
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return nil, err
	}
	if err := h.authorizeCopySource(r.Context(), rq, src); err != nil {
		return nil, err
	}
	if err := h.refuseACLHeaders(r, rq); err != nil {
		return nil, err
	}
	cond, err := writeCondition(r)
	if err != nil {
		return nil, err
	}
	in := &objectstore.CopyInput{
		SrcBucket: src.bucket, SrcKey: src.key, SrcVersionID: src.versionID,
		Check: copyConditions(r),
	}
	if in.ReplaceMetadata, err = directive(r, "x-amz-metadata-directive", "metadata"); err != nil {
		return nil, err
	}
	if in.ReplaceTags, err = directive(r, "x-amz-tagging-directive", "tagging"); err != nil {
		return nil, err
	}
	tmpl, err := objectTemplate(r)
	if err != nil {
		return nil, err
	}
	in.Dst = objectstore.PutInput{
		Bucket: rq.bucket, Key: rq.key, Owner: rq.principal.AccountID,
		ContentType: tmpl.ContentType, ContentEncoding: tmpl.ContentEncoding,
		ContentDisposition: tmpl.ContentDisposition, ContentLanguage: tmpl.ContentLanguage,
		CacheControl: tmpl.CacheControl, Expires: tmpl.Expires,
		Metadata: tmpl.Metadata, StorageClass: tmpl.StorageClass,
		WriteCondition: cond,
	}
	if in.ReplaceTags {
		if in.Dst.Tags, err = taggingHeader(r, rq); err != nil {
			return nil, err
		}
	}
	if s := r.Header.Get("x-amz-checksum-algorithm"); s != "" {
		if in.Dst.ChecksumAlgorithm, err = checksum.ParseAlgorithm(s); err != nil {
			return nil, apiErr("InvalidRequest", 400, "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
		}
	}
	return in, nil
}
