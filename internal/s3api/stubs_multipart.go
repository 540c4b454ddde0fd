package s3api

import "net/http"

// Placeholders until multipart upload lands; each answers NotImplemented.

func (h *Handler) createMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) uploadPart(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) uploadPartCopy(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) completeMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) abortMultipartUpload(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) listParts(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
func (h *Handler) listMultipartUploads(w http.ResponseWriter, r *http.Request, rq *request) error {
	return errNotImplemented
}
