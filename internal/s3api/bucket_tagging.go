package s3api

import (
	"net/http"

	"github.com/bulwark/bulwark/internal/objectstore"
)

func (h *Handler) putBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	var doc tagging
	if err := decodeVerifiedXML(r, rq, &doc, maxXMLBody); err != nil {
		return err
	}
	tags, err := doc.tagMap(objectstore.MaxBucketTags)
	if err != nil {
		return err
	}
	if err := h.store.SetBucketTags(r.Context(), rq.bucket, tags); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) getBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if len(b.Tags) == 0 {
		return errNoSuchTagSet
	}
	writeXML(w, http.StatusOK, taggingDoc(b.Tags))
	return nil
}

func (h *Handler) deleteBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.SetBucketTags(r.Context(), rq.bucket, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
