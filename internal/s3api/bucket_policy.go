package s3api

import (
	"bytes"
	"io"
	"net/http"

	"github.com/bulwark/bulwark/internal/iam"
)

// maxBucketPolicy is S3's limit on a bucket policy.
const maxBucketPolicy = 20 << 10

var errNoSuchBucketPolicy = apiErr("NoSuchBucketPolicy", 404, "The bucket policy does not exist")

func (h *Handler) putBucketPolicy(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	doc, err := io.ReadAll(io.LimitReader(r.Body, maxBucketPolicy+1))
	if err != nil {
		return err
	}
	if len(doc) > maxBucketPolicy {
		return apiErr("PolicyTooLarge", 400, "Policy exceeds the maximum allowed document size.")
	}
	if t := bytes.TrimSpace(doc); len(t) == 0 || t[0] != '{' {
		return apiErr("MalformedPolicy", 400, "Policies must be valid JSON and the first byte must be '{'")
	}
	if err := iam.CheckBucketPolicy(doc, rq.bucket); err != nil {
		return err
	}
	if err := h.store.SetBucketPolicy(r.Context(), rq.bucket, doc); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) getBucketPolicy(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if len(b.Policy) == 0 {
		return errNoSuchBucketPolicy
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Policy)
	return nil
}

func (h *Handler) deleteBucketPolicy(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.SetBucketPolicy(r.Context(), rq.bucket, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
