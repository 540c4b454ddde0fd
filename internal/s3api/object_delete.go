package s3api

import "net/http"

func (h *Handler) deleteObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	vid := rq.query.Get("versionId")
	if rq.query.Has("versionId") && vid == "" {
		return apiErr("InvalidArgument", 400, "Version id cannot be the empty string")
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
