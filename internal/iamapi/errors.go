package iamapi

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/iam/policy"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// apiError is an IAM or STS error as the client sees it. Codes never change
// once shipped: clients and scripts branch on them.
type apiError struct {
	Code    string
	Status  int
	Message string
	err     error // the cause, for logs only
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }
func (e *apiError) Unwrap() error { return e.err }

func apiErr(code string, status int, msg string) *apiError {
	return &apiError{Code: code, Status: status, Message: msg}
}

func errf(code string, status int, format string, args ...any) *apiError {
	return apiErr(code, status, fmt.Sprintf(format, args...))
}

// Errors with fixed messages, as IAM and STS word them.
var (
	errMissingAuth       = apiErr("MissingAuthenticationToken", 403, "Request is missing Authentication Token")
	errInvalidToken      = apiErr("InvalidClientTokenId", 403, "The security token included in the request is invalid.")
	errExpiredToken      = apiErr("ExpiredToken", 403, "The security token included in the request is expired")
	errSignatureMismatch = apiErr("SignatureDoesNotMatch", 403, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	errMissingAction     = apiErr("MissingAction", 400, "The request must contain the parameter Action.")
	errMethodNotAllowed  = apiErr("MethodNotAllowed", 405, "The IAM and STS endpoint accepts GET and POST only.")
	errBodyTooLarge      = apiErr("ValidationError", 400, fmt.Sprintf("The request body exceeds %d bytes.", maxBody))
	errNonUserCaller     = apiErr("ValidationError", 400, "Must specify userName when calling with non-User credentials")
	errBoundary          = apiErr("InvalidInput", 400, "Permissions boundaries are not supported by Bulwark.")
	errSessionPolicy     = apiErr("ValidationError", 400, "Session policies (Policy, PolicyArns) are not supported by Bulwark.")
	// errRequestTimeout answers a body that stalled, with the code the
	// SDKs retry as a transient failure in every service.
	errRequestTimeout = apiErr("RequestTimeout", 400, "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.")
)

// domainErrors maps the iam package's error kinds to codes. sts, when
// set, is what STS answers instead: it reports bad input as
// ValidationError and does not tell whether a role exists.
var domainErrors = []struct {
	err    error
	code   string
	status int
	sts    *apiError
}{
	{iam.ErrNoSuchEntity, "NoSuchEntity", 404, apiErr("AccessDenied", 403, "")},
	{iam.ErrEntityExists, "EntityAlreadyExists", 409, nil},
	{iam.ErrDeleteConflict, "DeleteConflict", 409, nil},
	{iam.ErrInvalidInput, "InvalidInput", 400, apiErr("ValidationError", 400, "")},
	{iam.ErrMalformedPolicy, "MalformedPolicyDocument", 400, nil},
	{iam.ErrLimitExceeded, "LimitExceeded", 409, nil},
	{iam.ErrNotAttachable, "PolicyNotAttachable", 400, nil},
	{iam.ErrAccessDenied, "AccessDenied", 403, nil},
	{iam.ErrInvalidClientToken, "InvalidClientTokenId", 403, nil},
	{iam.ErrExpiredToken, "ExpiredToken", 403, nil},
}

// signatureErrors maps what the signature verifier reports; an entry
// with no message takes the verifier's.
var signatureErrors = []struct {
	err error
	api *apiError
}{
	{sigv4.ErrInvalidAccessKeyID, errInvalidToken},
	{sigv4.ErrSignatureDoesNotMatch, errSignatureMismatch},
	{sigv4.ErrContentSHA256Mismatch, errSignatureMismatch},
	{sigv4.ErrRequestTimeTooSkewed, apiErr("SignatureDoesNotMatch", 403, "")},
	{sigv4.ErrRequestExpired, apiErr("RequestExpired", 400, "")},
	{sigv4.ErrAuthorizationHeaderMalformed, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrAuthorizationQueryParametersError, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrAccessDenied, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrNotImplemented, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrInvalidContentSHA256, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrInvalidRequest, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrInvalidArgument, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrIncompleteBody, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrMalformedChunk, apiErr("IncompleteSignature", 400, "")},
	{sigv4.ErrMalformedTrailer, apiErr("IncompleteSignature", 400, "")},
}

// toAPIError finds the code for err as service ("iam" or "sts") answers it.
// Anything not in the tables is a server fault.
func toAPIError(err error, service string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, httplimit.ErrReadTimeout) {
		e := *errRequestTimeout
		e.err = err
		return &e
	}
	// IAM's model has no exception for a temporary failure; a region out
	// of disk space answers 503, which every SDK retries, with the cause.
	var le *headroom.Error
	if errors.As(err, &le) {
		return &apiError{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable, Message: le.Message(), err: err}
	}
	for _, d := range domainErrors {
		if !errors.Is(err, d.err) {
			continue
		}
		e := &apiError{Code: d.code, Status: d.status, Message: domainMessage(err), err: err}
		if service == serviceSTS && d.sts != nil {
			e.Code, e.Status = d.sts.Code, d.sts.Status
		}
		return e
	}
	for _, s := range signatureErrors {
		if !errors.Is(err, s.err) {
			continue
		}
		e := *s.api
		if e.Message == "" {
			e.Message = domainMessage(err)
		}
		e.err = err
		return &e
	}
	if service == serviceSTS {
		return &apiError{Code: "InternalFailure", Status: 500, Message: "An internal error occurred.", err: err}
	}
	return &apiError{Code: "ServiceFailure", Status: 500, Message: "An internal error occurred.", err: err}
}

// domainMessage is the text after a wrapped sentinel's "kind: ", which the
// iam package words as AWS does.
func domainMessage(err error) string {
	// A policy's problem in IAM's words; where in the document it is stays
	// in the cause, for the log.
	var me *policy.MalformedError
	if errors.As(err, &me) {
		return me.Message
	}
	s := err.Error()
	if _, rest, ok := strings.Cut(s, ": "); ok && rest != "" {
		return rest
	}
	return s
}

// validationError words missing or out-of-range parameters the way AWS's
// request validation does.
type validationError struct{ problems []string }

func (v *validationError) add(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *validationError) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	s := "s"
	if len(v.problems) == 1 {
		s = ""
	}
	return errf("ValidationError", 400, "%d validation error%s detected: %s", len(v.problems), s, strings.Join(v.problems, "; "))
}

// memberName is the lower camel case name AWS's validation messages use.
func memberName(param string) string {
	if param == "" {
		return ""
	}
	return strings.ToLower(param[:1]) + param[1:]
}

type errorBody struct {
	XMLName   xml.Name    `xml:"ErrorResponse"`
	Xmlns     string      `xml:"xmlns,attr"`
	Error     errorDetail `xml:"Error"`
	RequestID string      `xml:"RequestId"`
}

type errorDetail struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}
