package s3api

import "net/http"

// Placeholders until the replication configuration API lands; each answers
// NotImplemented.

func (h *Handler) getBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) putBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) deleteBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
