package s3api

import "net/http"

func (h *Handler) deleteObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	res, err := h.store.DeleteObject(r.Context(), rq.bucket, rq.key, vid)
	if err != nil {
		return err
	}
	if res.DeleteMarker {
		w.Header().Set("x-amz-delete-marker", "true")
	}
	if res.VersionID != "" {
		w.Header().Set("x-amz-version-id", res.VersionID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
