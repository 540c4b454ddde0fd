package s3api

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

const (
	// maxDeleteObjects is S3's limit on keys in one DeleteObjects call.
	maxDeleteObjects = 1000
	// maxDeleteBody bounds a DeleteObjects body: 1,000 keys of 1,024 bytes,
	// each byte possibly escaped as an XML entity, and their version IDs.
	maxDeleteBody = 8 << 20
	// deleteWorkers is how many keys of one call are deleted at once.
	// Concurrent deletes share a group commit, so a call of 1,000 keys
	// costs tens of durable commits rather than a thousand.
	deleteWorkers = 16
)

var errMissingIntegrity = apiErr("InvalidRequest", 400, "Missing required header for this request: Content-MD5")

// decodeVerifiedXML reads the XML body of a call for which S3 requires an
// integrity check (DeleteObjects, the Put tagging calls): Content-MD5 or an
// x-amz-checksum-* value, in a header or a trailer. The body is verified
// before any of it is parsed; it may be at most limit bytes long.
func decodeVerifiedXML(r *http.Request, rq *request, v any, limit int64) error {
	opts := checksum.ReaderOptions{ExpectedSize: rq.auth.DecodedLength}
	if s := r.Header.Get("Content-MD5"); s != "" {
		sum, err := checksum.ParseContentMD5(s)
		if err != nil {
			return err
		}
		opts.ExpectedMD5 = sum
	}
	alg, expected, err := checksumRequest(r, rq)
	if err != nil {
		return err
	}
	if alg != "" && expected == nil {
		return apiErr("InvalidRequest", 400, "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.")
	}
	if opts.ExpectedMD5 == nil && expected == nil {
		return errMissingIntegrity
	}
	opts.Algorithm, opts.Expected = alg, expected
	data, err := io.ReadAll(io.LimitReader(checksum.NewReader(r.Body, opts), limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return errf("MalformedXML", 400, "The XML you provided was larger than the maximum of %d bytes", limit)
	}
	if len(data) == 0 {
		return apiErr("MissingRequestBodyError", 400, "Request Body is empty")
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return errMalformedXML
	}
	return nil
}

type deleteRequest struct {
	XMLName xml.Name           `xml:"Delete"`
	Quiet   bool               `xml:"Quiet"`
	Objects []objectIdentifier `xml:"Object"`
}

type objectIdentifier struct {
	Key       *string `xml:"Key"`
	VersionID string  `xml:"VersionId"`
}

type deleteResult struct {
	XMLName xml.Name        `xml:"DeleteResult"`
	NS      string          `xml:"xmlns,attr"`
	Deleted []deletedObject `xml:"Deleted"`
	Errors  []deleteError   `xml:"Error"`
}

type deletedObject struct {
	Key                   string `xml:"Key"`
	VersionID             string `xml:"VersionId,omitempty"`
	DeleteMarker          bool   `xml:"DeleteMarker,omitempty"`
	DeleteMarkerVersionID string `xml:"DeleteMarkerVersionId,omitempty"`
}

type deleteError struct {
	Key       string `xml:"Key"`
	VersionID string `xml:"VersionId,omitempty"`
	Code      string `xml:"Code"`
	Message   string `xml:"Message"`
}

// deleteOutcome is what happened to one key: exactly one field is set.
type deleteOutcome struct {
	deleted *deletedObject
	err     *deleteError
}

// deleteObjects deletes up to 1,000 keys, each as DeleteObject would. A
// key that fails is reported in the result and never fails the call.
func (h *Handler) deleteObjects(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	var req deleteRequest
	if err := decodeVerifiedXML(r, rq, &req, maxDeleteBody); err != nil {
		return err
	}
	if len(req.Objects) == 0 || len(req.Objects) > maxDeleteObjects {
		return errMalformedXML
	}
	for _, o := range req.Objects {
		if o.Key == nil || *o.Key == "" {
			return errMalformedXML
		}
	}
	outcomes := make([]deleteOutcome, len(req.Objects))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(deleteWorkers, len(req.Objects)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(req.Objects); i = int(next.Add(1)) - 1 {
				outcomes[i] = h.deleteOne(r.Context(), rq, req.Objects[i])
			}
		})
	}
	wg.Wait()
	res := deleteResult{NS: xmlNS}
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			res.Errors = append(res.Errors, *o.err)
		case !req.Quiet:
			res.Deleted = append(res.Deleted, *o.deleted)
		}
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// deleteOne deletes one key of a DeleteObjects call, checking the caller's
// right to it as S3 does: s3:DeleteObject, or s3:DeleteObjectVersion when a
// version is named.
func (h *Handler) deleteOne(ctx context.Context, rq *request, o objectIdentifier) deleteOutcome {
	key, vid := *o.Key, o.VersionID
	action := "s3:DeleteObject"
	if vid != "" {
		action = "s3:DeleteObjectVersion"
	}
	err := h.authz.Authorize(ctx, h.accessRequest(ctx, rq, action, rq.bucket, key, vid))
	var res *objectstore.DeleteResult
	if err == nil {
		res, err = h.store.DeleteObject(ctx, rq.bucket, key, vid)
	}
	if err != nil {
		return deleteOutcome{err: h.deleteErrorFor(rq, key, vid, err)}
	}
	d := &deletedObject{Key: key, VersionID: vid}
	if res.DeleteMarker {
		d.DeleteMarker, d.DeleteMarkerVersionID = true, res.VersionID
	}
	return deleteOutcome{deleted: d}
}

func (h *Handler) deleteErrorFor(rq *request, key, vid string, err error) *deleteError {
	e := toAPIError(err)
	if errors.Is(err, objectstore.ErrInvalidVersionID) {
		// Within DeleteObjects, S3 answers a malformed version ID as one
		// that does not exist.
		e = errNoSuchVersion
	}
	if e.Status >= 500 {
		h.log.Error("delete object", "request_id", rq.id, "key", key, "err", err)
	}
	return &deleteError{Key: key, VersionID: vid, Code: e.Code, Message: e.Message}
}
