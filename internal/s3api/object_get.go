package s3api

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

func (h *Handler) getObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.readObject(w, r, rq, true)
}

func (h *Handler) headObject(w http.ResponseWriter, r *http.Request, rq *request) error {
	return h.readObject(w, r, rq, false)
}

func (h *Handler) readObject(w http.ResponseWriter, r *http.Request, rq *request, withBody bool) error {
	vid, err := versionIDParam(rq)
	if err != nil {
		return err
	}
	var (
		v    *objectstore.Version
		body objectstore.Body
	)
	if withBody {
		v, body, err = h.store.GetObject(r.Context(), rq.bucket, rq.key, vid)
	} else {
		v, err = h.store.HeadObject(r.Context(), rq.bucket, rq.key, vid)
	}
	if err != nil {
		return err
	}
	if body != nil {
		defer body.Close()
	}
	hdr := w.Header()
	setObjectHeaders(hdr, v, rq)
	if status := checkConditions(r, v); status != 0 {
		if status == http.StatusPreconditionFailed {
			return errPreconditionFailed
		}
		for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition", "Content-Language", "Expires"} {
			hdr.Del(k)
		}
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	start, length, ranged, err := parseRange(r.Header.Get("Range"), v.Size)
	if err != nil {
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", v.Size))
		return err
	}
	if rq.query.Has("partNumber") {
		n, err := partNumber(rq)
		if err != nil {
			return err
		}
		if r.Header.Get("Range") != "" {
			return apiErr("InvalidRequest", 400, "Cannot specify both Range header and partNumber query parameter")
		}
		if start, length, err = partRange(v, n); err != nil {
			return err
		}
		ranged = len(v.Parts) > 0
		if ranged {
			hdr.Set("x-amz-mp-parts-count", strconv.Itoa(len(v.Parts)))
		}
	}
	if !ranged && r.Header.Get("x-amz-checksum-mode") == "ENABLED" && v.ChecksumAlgorithm != "" {
		hdr.Set(checksum.Algorithm(v.ChecksumAlgorithm).HeaderName(), v.Checksum)
		hdr.Set("x-amz-checksum-type", v.ChecksumKind())
	}
	applyOverrides(hdr, rq)
	hdr.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if ranged {
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, v.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if !withBody || length == 0 {
		return nil
	}
	if _, err := body.Seek(start, io.SeekStart); err != nil {
		h.log.Error("seek object", "request_id", rq.id, "err", err)
		return nil
	}
	src := io.Reader(body)
	if f, ok := body.(interface{ OSFile() *os.File }); ok {
		src = f.OSFile() // lets the kernel send the file directly
	}
	if _, err := io.Copy(w, io.LimitReader(src, length)); err != nil {
		// Headers are gone; all that can be done is to cut the connection,
		// which the client sees as a short body.
		h.log.Debug("send object", "request_id", rq.id, "err", err)
	}
	return nil
}

func setObjectHeaders(hdr http.Header, v *objectstore.Version, rq *request) {
	hdr.Set("Last-Modified", v.LastModified.UTC().Format(http.TimeFormat))
	hdr.Set("ETag", `"`+v.ETag+`"`)
	hdr.Set("Accept-Ranges", "bytes")
	ct := v.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	hdr.Set("Content-Type", ct)
	for k, val := range map[string]string{
		"Content-Encoding": v.ContentEncoding, "Content-Disposition": v.ContentDisposition,
		"Content-Language": v.ContentLanguage, "Cache-Control": v.CacheControl, "Expires": v.Expires,
		"x-amz-storage-class": v.StorageClass, "x-amz-replication-status": v.ReplicationStatus,
	} {
		if val != "" {
			hdr.Set(k, val)
		}
	}
	if !v.Null || v.BucketVersioned {
		hdr.Set("x-amz-version-id", v.VersionID)
	}
	for k, val := range v.Metadata {
		hdr["X-Amz-Meta-"+k] = []string{val}
	}
	if len(v.Tags) > 0 {
		hdr.Set("x-amz-tagging-count", strconv.Itoa(len(v.Tags)))
	}
}

// applyOverrides applies the response-* query parameters of a signed GET.
func applyOverrides(hdr http.Header, rq *request) {
	for param, header := range map[string]string{
		"response-content-type": "Content-Type", "response-content-language": "Content-Language",
		"response-expires": "Expires", "response-cache-control": "Cache-Control",
		"response-content-disposition": "Content-Disposition", "response-content-encoding": "Content-Encoding",
	} {
		if v := rq.query.Get(param); v != "" {
			hdr.Set(header, v)
		}
	}
}

// checkConditions evaluates the conditional headers as S3 does, returning
// 0 to proceed, 304 or 412. If-Match that holds overrides a failing
// If-Unmodified-Since; If-None-Match that fails overrides If-Modified-Since.
func checkConditions(r *http.Request, v *objectstore.Version) int {
	etag := v.ETag
	mod := v.LastModified.Truncate(time.Second)
	if im := r.Header.Get("If-Match"); im != "" {
		if !etagMatches(im, etag) {
			return http.StatusPreconditionFailed
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" {
		if t, err := http.ParseTime(ius); err == nil && mod.After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etagMatches(inm, etag) {
			return http.StatusNotModified
		}
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

func etagMatches(header, etag string) bool {
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		part = strings.TrimPrefix(part, "W/")
		if part == "*" || strings.Trim(part, `"`) == etag {
			return true
		}
	}
	return false
}

// parseRange parses a single byte range. Syntax S3 does not understand (or
// several ranges) means the whole object, as in S3; a range that starts past
// the end is InvalidRange.
func parseRange(h string, size int64) (start, length int64, ranged bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, nil
	}
	switch {
	case first == "":
		n, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || n < 0 {
			return 0, size, false, nil
		}
		if n == 0 {
			return 0, 0, false, errInvalidRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	default:
		s, perr := strconv.ParseInt(first, 10, 64)
		if perr != nil || s < 0 {
			return 0, size, false, nil
		}
		e := size - 1
		if last != "" {
			if e, perr = strconv.ParseInt(last, 10, 64); perr != nil || e < s {
				return 0, size, false, nil
			}
			e = min(e, size-1)
		}
		if s >= size {
			return 0, 0, false, errInvalidRange
		}
		return s, e - s + 1, true, nil
	}
}
