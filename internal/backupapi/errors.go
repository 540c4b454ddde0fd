package backupapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// apiError is an AWS Backup error as the client sees it. Codes never
// change once shipped: clients and scripts branch on them.
type apiError struct {
	Code    string
	Status  int
	Message string
	// ARN and CreatorRequestID fill AlreadyExistsException's members.
	ARN string
	err error // the cause, for logs only
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }
func (e *apiError) Unwrap() error { return e.err }

func errf(code string, status int, format string, args ...any) *apiError {
	return &apiError{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// Errors of the protocol and of authentication, as AWS's REST-JSON
// services word them.
var (
	errMissingAuth   = errf("MissingAuthenticationTokenException", 403, "Missing Authentication Token")
	errInvalidKey    = errf("UnrecognizedClientException", 403, "The security token included in the request is invalid.")
	errExpiredToken  = errf("ExpiredTokenException", 403, "The security token included in the request is expired")
	errSignature     = errf("InvalidSignatureException", 403, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	errUnknownOp     = errf("UnknownOperationException", 404, "The requested operation is not recognized by AWS Backup.")
	errInvalidToken  = errf("InvalidParameterValueException", 400, "Invalid NextToken.")
	errInvalidResult = errf("InvalidParameterValueException", 400, "MaxResults must be between 1 and 1000.")
	// errRequestTimeout answers a body that stalled. The model names no
	// such error; RequestTimeoutException is the code the SDKs retry as a
	// transient failure in every service.
	errRequestTimeout = errf("RequestTimeoutException", 400, "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.")
)

// bodyTooLarge is the answer to a body over maxBody. The Backup model
// declares no error for it; AWS's REST-JSON front end answers an
// oversized request itself, before the service, with HTTP 413 and
// RequestEntityTooLargeException worded "Request must be smaller than N
// bytes for the OP operation" (Lambda's Invoke shows it, under a code its
// own model does not declare either). A 400 would tell the SDK the request
// was malformed, IncompleteSignatureException that it was signed wrong.
// An operation Bulwark does not know (op "") goes unnamed.
func bodyTooLarge(op string) *apiError {
	if op == "" {
		return errf("RequestEntityTooLargeException", http.StatusRequestEntityTooLarge, "Request must be smaller than %d bytes", maxBody)
	}
	return errf("RequestEntityTooLargeException", http.StatusRequestEntityTooLarge,
		"Request must be smaller than %d bytes for the %s operation", maxBody, op)
}

// domainErrors maps the backup package's error kinds to AWS Backup's
// exceptions. The model gives these no status, and AWS answers all of
// them with 400.
var domainErrors = []struct {
	kind error
	code string
}{
	{backup.ErrNotFound, "ResourceNotFoundException"},
	{backup.ErrAlreadyExists, "AlreadyExistsException"},
	{backup.ErrInvalidParameter, "InvalidParameterValueException"},
	{backup.ErrMissingParameter, "MissingParameterValueException"},
	{backup.ErrInvalidRequest, "InvalidRequestException"},
	{backup.ErrLimitExceeded, "LimitExceededException"},
	{backup.ErrConflict, "ConflictException"},
}

// Exception returns the AWS Backup exception that answers an error of one
// of the backup package's kinds (ResourceNotFoundException for
// backup.ErrNotFound, ...); ok is false for an error of none. Bulwark's
// admin API answers the backup package's errors with the same codes.
func Exception(err error) (code string, ok bool) {
	for _, d := range domainErrors {
		if errors.Is(err, d.kind) {
			return d.code, true
		}
	}
	return "", false
}

// signatureErrors maps what the signature verifier reports.
var signatureErrors = []struct {
	err  error
	code string
}{
	{sigv4.ErrInvalidAccessKeyID, "UnrecognizedClientException"},
	{sigv4.ErrSignatureDoesNotMatch, "InvalidSignatureException"},
	{sigv4.ErrContentSHA256Mismatch, "InvalidSignatureException"},
	{sigv4.ErrRequestTimeTooSkewed, "InvalidSignatureException"},
	{sigv4.ErrRequestExpired, "InvalidSignatureException"},
	{sigv4.ErrAuthorizationHeaderMalformed, "IncompleteSignatureException"},
	{sigv4.ErrAuthorizationQueryParametersError, "IncompleteSignatureException"},
	{sigv4.ErrAccessDenied, "IncompleteSignatureException"},
	{sigv4.ErrNotImplemented, "IncompleteSignatureException"},
	{sigv4.ErrInvalidContentSHA256, "IncompleteSignatureException"},
	{sigv4.ErrInvalidRequest, "IncompleteSignatureException"},
	{sigv4.ErrInvalidArgument, "IncompleteSignatureException"},
	{sigv4.ErrIncompleteBody, "IncompleteSignatureException"},
	{sigv4.ErrMalformedChunk, "IncompleteSignatureException"},
	{sigv4.ErrMalformedTrailer, "IncompleteSignatureException"},
}

// toAPIError finds the exception for err; anything not in the tables is
// a server fault.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, httplimit.ErrReadTimeout) {
		e := *errRequestTimeout
		e.err = err
		return &e
	}
	// A region out of disk space: the model's exception for a temporary
	// failure of the server, with the cause in the message.
	var le *headroom.Error
	if errors.As(err, &le) {
		return &apiError{Code: "ServiceUnavailableException", Status: http.StatusServiceUnavailable, Message: le.Message(), err: err}
	}
	var de *backup.Error
	if errors.As(err, &de) {
		if code, ok := Exception(err); ok {
			return &apiError{Code: code, Status: http.StatusBadRequest, Message: de.Message, ARN: de.ARN, err: err}
		}
	}
	for _, s := range signatureErrors {
		if errors.Is(err, s.err) {
			if s.code == "InvalidSignatureException" && !errors.Is(err, sigv4.ErrSignatureDoesNotMatch) {
				return &apiError{Code: s.code, Status: 403, Message: err.Error(), err: err}
			}
			if s.code == "InvalidSignatureException" {
				e := *errSignature
				e.err = err
				return &e
			}
			status := 403
			if s.code == "IncompleteSignatureException" {
				status = 400
			}
			return &apiError{Code: s.code, Status: status, Message: err.Error(), err: err}
		}
	}
	return &apiError{Code: "ServiceUnavailableException", Status: 500, Message: "An internal error occurred.", err: err}
}
