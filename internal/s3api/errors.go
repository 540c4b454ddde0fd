package s3api

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/iam/policy"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/sigv4"
	"github.com/bulwark/bulwark/internal/topology"
)

// APIError is an S3 error as the client sees it. Codes never change once
// shipped: clients branch on them.
type APIError struct {
	Code    string
	Message string
	Status  int
	// Header carries extra response headers (x-amz-delete-marker, ...).
	Header http.Header
	// Extra carries extra elements of the XML body, e.g. the region.
	Extra []xmlField
	err   error // the cause, for logs only
}

type xmlField struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }
func (e *APIError) Unwrap() error { return e.err }

func apiErr(code string, status int, msg string) *APIError {
	return &APIError{Code: code, Status: status, Message: msg}
}

func errf(code string, status int, format string, args ...any) *APIError {
	return apiErr(code, status, fmt.Sprintf(format, args...))
}

// Errors with fixed messages, as S3 words them.
var (
	errNoSuchBucket         = apiErr("NoSuchBucket", 404, "The specified bucket does not exist")
	errNoSuchKey            = apiErr("NoSuchKey", 404, "The specified key does not exist.")
	errNoSuchVersion        = apiErr("NoSuchVersion", 404, "The specified version does not exist.")
	errBucketExists         = apiErr("BucketAlreadyExists", 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.")
	errBucketOwnedByYou     = apiErr("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket succeeded and you already own it.")
	errBucketNotEmpty       = apiErr("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
	errInvalidBucketName    = apiErr("InvalidBucketName", 400, "The specified bucket is not valid.")
	errMalformedXML         = apiErr("MalformedXML", 400, "The XML you provided was not well-formed or did not validate against our published schema")
	errBadDigest            = apiErr("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
	errInvalidDigest        = apiErr("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
	errSHA256Mismatch       = apiErr("XAmzContentSHA256Mismatch", 400, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	errSignatureMismatch    = apiErr("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	errInvalidAccessKey     = apiErr("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.")
	errAccessDenied         = apiErr("AccessDenied", 403, "Access Denied")
	errExpired              = apiErr("AccessDenied", 403, "Request has expired")
	errTimeSkewed           = apiErr("RequestTimeTooSkewed", 403, "The difference between the request time and the current time is too large.")
	errIncompleteBody       = apiErr("IncompleteBody", 400, "You did not provide the number of bytes specified by the Content-Length HTTP header")
	errEntityTooLarge       = apiErr("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size.")
	errMethodNotAllowed     = apiErr("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
	errNotImplemented       = apiErr("NotImplemented", 501, "A header or query you provided implies functionality that is not implemented.")
	errMissingContentLength = apiErr("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
	errInvalidRange         = apiErr("InvalidRange", 416, "The requested range is not satisfiable")
	errPreconditionFailed   = apiErr("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold")
	errNoSuchTagSet         = apiErr("NoSuchTagSet", 404, "The TagSet does not exist")
	errKeyTooLong           = apiErr("KeyTooLongError", 400, "Your key is too long")
	errMetadataTooLarge     = apiErr("MetadataTooLarge", 400, "Your metadata headers exceed the maximum allowed metadata size.")
	errRequestTimeout       = apiErr("RequestTimeout", 400, "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.")
	errInternal             = apiErr("InternalError", 500, "We encountered an internal error. Please try again.")
	errServiceUnavailable   = apiErr("ServiceUnavailable", 503, "Please reduce your request rate.")
	errMetaUnavailable      = apiErr("ServiceUnavailable", 503, "The region's metadata store cannot be reached; the request was not carried out. Retry it later.")
	errMetaUnknownOutcome   = apiErr("ServiceUnavailable", 503, "The region's metadata store went away while the request was being committed: it may or may not have been carried out.")
	errACLNotSupported      = apiErr("AccessControlListNotSupported", 400, "The bucket does not allow ACLs")
	errMalformedPolicy      = apiErr("MalformedPolicy", 400, "This policy contains invalid Json")
)

// Errors of bucket CORS and of preflight requests, worded as S3 sends them
// (misspelling included: clients and tests compare the text).
var (
	errNoSuchCORSConfiguration = apiErr("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")
	errCORSNoOrigin            = apiErr("BadRequest", 400, "Insufficient information. Origin request header needed.")
	errCORSNoMethod            = apiErr("BadRequest", 400, "Insufficient information. Access-Control-Request-Method request header needed.")
	errCORSBucketNotFound      = apiErr("AccessForbidden", 403, "CORSResponse: Bucket not found")
	errCORSNotEnabled          = apiErr("AccessForbidden", 403, "CORSResponse: CORS is not enabled for this bucket.")
	errCORSNotAllowed          = apiErr("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
)

// Errors of bucket replication configurations.
var (
	errNoSuchReplicationConfiguration = apiErr("ReplicationConfigurationNotFoundError", 404, "The replication configuration was not found")
	errReplicationKeepsVersioning     = apiErr("InvalidBucketState", 409, "A replication configuration is present on this bucket, so the versioning state cannot be changed.")
)

// toAPIError maps an error from any layer to what the client sees. Anything
// unknown is an internal error; its cause goes to the log, not the client.
func toAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var dm *objectstore.DeleteMarkerError
	if errors.As(err, &dm) {
		base := errNoSuchKey
		if errors.Is(err, objectstore.ErrMethodNotAllowed) {
			base = errMethodNotAllowed
		}
		e := *base
		e.Header = http.Header{}
		e.Header.Set("x-amz-delete-marker", "true")
		e.Header.Set("x-amz-version-id", dm.VersionID)
		e.Header.Set("Last-Modified", dm.LastModified.UTC().Format(http.TimeFormat))
		return &e
	}
	if errors.Is(err, iam.ErrAccessDenied) {
		// S3 says who was refused what, and why, as IAM's evaluation found.
		e := *errAccessDenied
		if _, why, ok := strings.Cut(err.Error(), iam.ErrAccessDenied.Error()+": "); ok {
			e.Message = why
		}
		e.err = err
		return &e
	}
	if errors.Is(err, iam.ErrMalformedPolicy) {
		// The parser's message is S3's; where in the document the problem
		// is stays in the cause, for the log.
		e := *errMalformedPolicy
		var me *policy.MalformedError
		if errors.As(err, &me) {
			e.Message = me.Message
		}
		e.err = err
		return &e
	}
	if e := lowSpace(err); e != nil {
		return e
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			e := *m.api
			if m.detail {
				e.Message = err.Error()
			}
			e.err = err
			return &e
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		e := *errRequestTimeout
		e.err = err
		return &e
	}
	e := *errInternal
	e.err = err
	return &e
}

// lowSpace answers a write the region has no disk space for. S3 has no
// code for it; ServiceUnavailable (503) is the one whose meaning fits: the
// server cannot take the request now, and the same request may succeed
// later, which every SDK knows to retry. SlowDown would tell the client to
// lower its request rate, which frees no space. The message says why and
// that deletes work, so that a person reading it knows what to do.
func lowSpace(err error) *APIError {
	var le *headroom.Error
	switch {
	case errors.As(err, &le):
		e := *errServiceUnavailable
		e.Message, e.err = le.Message(), err
		return &e
	case headroom.NoSpace(err):
		// A write that ran out of space on a path that did not say which
		// region's disk: still not an internal error.
		e := *errServiceUnavailable
		e.Message, e.err = "The region ran out of disk space; the request was not carried out, deletes still work.", err
		return &e
	}
	return nil
}

// errorTable maps domain and protocol errors to S3 errors. detail says the
// error text is safe and more useful to the client than the fixed message.
var errorTable = []struct {
	err    error
	api    *APIError
	detail bool
}{
	// First: a stalled body surfaces through every reader of the body,
	// some of which wrap it in errors of their own.
	{httplimit.ErrReadTimeout, errRequestTimeout, false},
	{objectstore.ErrNoSuchBucket, errNoSuchBucket, false},
	{objectstore.ErrNoSuchKey, errNoSuchKey, false},
	{objectstore.ErrNoSuchVersion, errNoSuchVersion, false},
	{objectstore.ErrBucketExists, errBucketExists, false},
	{objectstore.ErrBucketOwnedByYou, errBucketOwnedByYou, false},
	{objectstore.ErrBucketNotEmpty, errBucketNotEmpty, false},
	{objectstore.ErrInvalidBucketName, errInvalidBucketName, true},
	{objectstore.ErrInvalidKey, apiErr("InvalidArgument", 400, ""), true},
	{objectstore.ErrKeyTooLong, errKeyTooLong, false},
	{objectstore.ErrInvalidVersionID, apiErr("InvalidArgument", 400, "Invalid version id specified"), false},
	{objectstore.ErrInvalidArgument, apiErr("InvalidArgument", 400, ""), true},
	{objectstore.ErrMetadataTooLarge, errMetadataTooLarge, false},
	{objectstore.ErrInvalidTag, apiErr("InvalidTag", 400, ""), true},
	{objectstore.ErrTooManyTags, apiErr("BadRequest", 400, ""), true},
	{objectstore.ErrCopyToItself, apiErr("InvalidRequest", 400, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."), false},
	{objectstore.ErrCopyFromDeleteMarker, apiErr("InvalidRequest", 400, "The source of a copy request may not specifically refer to a delete marker by version id."), false},
	{objectstore.ErrCopySourceTooLarge, apiErr("InvalidRequest", 400, fmt.Sprintf("The specified copy source is larger than the maximum allowable size for a copy source: %d", objectstore.MaxCopySize)), false},
	{objectstore.ErrWrongRegion, apiErr("IllegalLocationConstraintException", 400, ""), true},
	{objectstore.ErrReplicaNotVersioned, apiErr("InvalidBucketState", 409, "Destination bucket must have versioning enabled."), false},
	{topology.ErrRegionUnreachable, apiErr("ServiceUnavailable", 503, ""), true},
	// The metadata store (PostgreSQL) down, restarting or cut off: the
	// same request succeeds once it is back, as SDKs know to retry. A
	// commit whose answer was lost is the one case that may have been
	// carried out. The cause goes to the log, not to the client.
	{meta.ErrUnknownOutcome, errMetaUnknownOutcome, false},
	{meta.ErrUnavailable, errMetaUnavailable, false},
	{checksum.ErrBadDigest, errBadDigest, false},
	{checksum.ErrInvalidDigest, errInvalidDigest, false},
	{checksum.ErrChecksumMismatch, apiErr("BadDigest", 400, ""), true},
	{checksum.ErrInvalidChecksum, apiErr("InvalidRequest", 400, ""), true},
	{checksum.ErrIncompleteBody, errIncompleteBody, false},
	{sigv4.ErrInvalidAccessKeyID, errInvalidAccessKey, false},
	{sigv4.ErrSignatureDoesNotMatch, errSignatureMismatch, false},
	{sigv4.ErrAuthorizationHeaderMalformed, apiErr("AuthorizationHeaderMalformed", 400, ""), true},
	{sigv4.ErrAuthorizationQueryParametersError, apiErr("AuthorizationQueryParametersError", 400, ""), true},
	{sigv4.ErrRequestExpired, errExpired, false},
	{sigv4.ErrAccessDenied, apiErr("AccessDenied", 403, ""), true},
	{sigv4.ErrRequestTimeTooSkewed, errTimeSkewed, false},
	{sigv4.ErrContentSHA256Mismatch, errSHA256Mismatch, false},
	{sigv4.ErrInvalidContentSHA256, apiErr("InvalidArgument", 400, ""), true},
	{sigv4.ErrIncompleteBody, errIncompleteBody, false},
	{sigv4.ErrMalformedChunk, apiErr("InvalidRequest", 400, ""), true},
	{sigv4.ErrMalformedTrailer, apiErr("MalformedTrailerError", 400, "The request contained trailing data that was not well-formed or did not conform to our published schema."), false},
	{sigv4.ErrInvalidRequest, apiErr("InvalidRequest", 400, ""), true},
	{sigv4.ErrInvalidArgument, apiErr("InvalidArgument", 400, ""), true},
	{sigv4.ErrNotImplemented, errNotImplemented, true},
	{iam.ErrAccessDenied, errAccessDenied, false},
	{iam.ErrInvalidClientToken, apiErr("InvalidToken", 400, "The provided token is malformed or otherwise invalid."), false},
	{iam.ErrExpiredToken, apiErr("ExpiredToken", 400, "The provided token has expired."), false},
	{objectstore.ErrReplicationKeepsVersioning, errReplicationKeepsVersioning, false},
	{objectstore.ErrNoSuchUpload, apiErr("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."), false},
	{objectstore.ErrInvalidPart, apiErr("InvalidPart", 400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."), false},
	{objectstore.ErrInvalidPartOrder, apiErr("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be ordered by part number."), false},
	{objectstore.ErrEntityTooSmall, apiErr("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size."), false},
	{objectstore.ErrMalformedRequest, errMalformedXML, false},
	{objectstore.ErrInvalidRequest, apiErr("InvalidRequest", 400, ""), true},
	{objectstore.ErrChecksumMismatch, apiErr("BadDigest", 400, ""), true},
	{objectstore.ErrPreconditionFailed, errPreconditionFailed, false},
	// A version whose stored data the scrubber found damaged: never
	// served, until it is repaired from a replica or a backup. A 500, as
	// for any failure of the service's own storage, which clients retry.
	{objectstore.ErrDamaged, apiErr("InternalError", 500, "The stored data of this object version is damaged: it is never served as it is; it is repaired from a replica in another region when one exists, or restore it from a backup (bulwark scrub --repair-from-backup)."), false},
	{objectstore.ErrReplicationNeedsVersioning, apiErr("InvalidRequest", 400, "Versioning must be 'Enabled' on the bucket to apply a replication configuration"), false},
	// The text of a replication.ConfigError is S3's message, except for a
	// malformed document, whose text says why for the log.
	{replication.ErrMalformed, errMalformedXML, false},
	{replication.ErrRuleIDTooLong, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrDuplicateRuleID, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrMixedSchema, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrPriorityRequired, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrDuplicatePriority, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrNegativePriority, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrDeleteMarkerReplicationRequired, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrDeleteMarkerReplicationWithTags, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrInvalidDestination, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrSameBucket, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrInvalidAccount, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrInvalidRole, apiErr("InvalidArgument", 400, ""), true},
	{replication.ErrReplicationTime, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrEncryption, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrSourceNotVersioned, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrDestinationNotFound, apiErr("InvalidRequest", 400, ""), true},
	{replication.ErrDestinationNotVersioned, apiErr("InvalidRequest", 400, ""), true},
}

type errorBody struct {
	XMLName    xml.Name   `xml:"Error"`
	Code       string     `xml:"Code"`
	Message    string     `xml:"Message"`
	BucketName string     `xml:"BucketName,omitempty"`
	Key        string     `xml:"Key,omitempty"`
	Extra      []xmlField `xml:",any"`
	Resource   string     `xml:"Resource"`
	RequestID  string     `xml:"RequestId"`
	HostID     string     `xml:"HostId"`
}

// writeError renders err. HEAD responses carry no body, as in S3.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	e := toAPIError(err)
	rq.status, rq.errCode = e.Status, e.Code
	var le *headroom.Error
	switch {
	case errors.As(err, &le) && le.Err == nil:
		// Refused for want of room: the guard logs when that starts and
		// ends, not once per request.
		h.log.Debug("request refused", "request_id", rq.id, "op", rq.op, "code", e.Code, "err", err)
	case e.Code == "ServiceUnavailable" && headroom.NoSpace(err):
		h.log.Warn("request ran out of disk space", "request_id", rq.id, "op", rq.op, "err", err)
	case errors.Is(err, meta.ErrUnavailable) || errors.Is(err, meta.ErrUnknownOutcome):
		// Every request says so while the database is away: one warning
		// each, not an error.
		h.log.Warn("metadata store unavailable", "request_id", rq.id, "op", rq.op, "err", err)
	case errors.Is(err, topology.ErrRegionUnreachable):
		// Expected while a region is down or cut off, and answered with
		// its cause: a partition must not flood the log with errors.
		h.log.Warn("request for an unreachable region", "request_id", rq.id, "op", rq.op, "err", err)
	case e.Status >= 500:
		h.log.Error("request failed", "request_id", rq.id, "op", rq.op, "err", err)
	case e.err != nil:
		h.log.Debug("request refused", "request_id", rq.id, "op", rq.op, "code", e.Code, "err", e.err)
	}
	for k, vs := range e.Header {
		w.Header()[k] = vs
	}
	if e.Code == "RequestTimeTooSkewed" {
		e.Extra = append(e.Extra, xmlField{XMLName: xml.Name{Local: "ServerTime"}, Value: time.Now().UTC().Format(time.RFC3339)})
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	body := errorBody{
		Code: e.Code, Message: e.Message, Extra: e.Extra,
		BucketName: rq.bucket, Key: rq.key,
		Resource: r.URL.Path, RequestID: rq.id, HostID: rq.hostID,
	}
	if e.Code != "NoSuchBucket" && e.Code != "NoSuchKey" && e.Code != "NoSuchVersion" && e.Code != "BucketNotEmpty" && e.Code != "BucketAlreadyExists" && e.Code != "BucketAlreadyOwnedByYou" {
		body.BucketName, body.Key = "", ""
	}
	writeXML(w, e.Status, body)
}
