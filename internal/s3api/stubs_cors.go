package s3api

import "net/http"

// Placeholders until bucket CORS lands; each answers NotImplemented.

func (h *Handler) getBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) putBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) deleteBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
