package s3api

import "net/http"

// Placeholders until ACLs and GetObjectAttributes land; each answers
// NotImplemented.

func (h *Handler) getBucketACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) putBucketACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) getObjectACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) putObjectACL(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) getObjectAttributes(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
