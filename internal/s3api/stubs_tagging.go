package s3api

import "net/http"

// Placeholders until tagging, copy and multi-object delete land; each
// answers NotImplemented.

func (h *Handler) putBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) getBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) deleteBucketTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) putObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) getObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) deleteObjectTagging(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) deleteObjects(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) copyObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
