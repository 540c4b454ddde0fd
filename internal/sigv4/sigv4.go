// Package sigv4 verifies AWS Signature Version 4 on S3-style requests, in
// every form the AWS CLI, boto3 and the AWS SDKs send: the Authorization
// header, presigned URLs, and the payload modes of x-amz-content-sha256,
// including aws-chunked bodies with chunk and trailer signatures. It also
// verifies Signature Version 2 presigned URLs, which the aws CLI v1 still
// makes by default.
//
// It holds no state and touches no storage. Verify answers who signed a
// request and hands back a replacement body that verifies the payload as it
// is read: every failure the body can only reveal at its end is returned in
// place of io.EOF, so a consumer that commits on a clean io.EOF never commits
// a body whose signature or hash did not hold.
//
// Errors are wrapped sentinels, matched with errors.Is; the S3 error code
// each stands for is given at its declaration.
package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Errors reported by Verify and by the Result body. Each comment names the
// S3 error code the wire layer should answer with.
var (
	// InvalidAccessKeyId (403). Lookup returns it for unknown keys.
	ErrInvalidAccessKeyID = errors.New("the AWS access key ID you provided does not exist in our records")
	// SignatureDoesNotMatch (403), also for a bad chunk or trailer signature.
	ErrSignatureDoesNotMatch = errors.New("the request signature we calculated does not match the signature you provided")
	// AuthorizationHeaderMalformed (400).
	ErrAuthorizationHeaderMalformed = errors.New("the authorization header is malformed")
	// AuthorizationQueryParametersError (400).
	ErrAuthorizationQueryParametersError = errors.New("error parsing the query-string authentication parameters")
	// AccessDenied (403): unsigned x-amz-* headers, a missing date, a
	// presigned URL not valid yet.
	ErrAccessDenied = errors.New("access denied")
	// AccessDenied (403) with S3's "Request has expired" message.
	ErrRequestExpired = errors.New("request has expired")
	// RequestTimeTooSkewed (403).
	ErrRequestTimeTooSkewed = errors.New("the difference between the request time and the current time is too large")
	// XAmzContentSHA256Mismatch (400).
	ErrContentSHA256Mismatch = errors.New("the provided 'x-amz-content-sha256' header does not match what was computed")
	// InvalidArgument (400): x-amz-content-sha256 has a value S3 does not
	// accept.
	ErrInvalidContentSHA256 = errors.New("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value, or a hex sha256")
	// InvalidRequest (400).
	ErrInvalidRequest = errors.New("invalid request")
	// A body over MaxHashedBody, which Verify reads whole to hash it. The
	// error wraps ErrInvalidRequest too, for wires that answer both alike;
	// one that has its own answer for a body too large tests for this.
	ErrBodyTooLarge = errors.New("request body too large")
	// InvalidArgument (400).
	ErrInvalidArgument = errors.New("invalid argument")
	// IncompleteBody (400): the body ended early, or its decoded length is
	// not the announced one.
	ErrIncompleteBody = errors.New("you did not provide the number of bytes specified by the request")
	// InvalidRequest (400): aws-chunked framing S3 would not accept.
	ErrMalformedChunk = errors.New("malformed aws-chunked encoding")
	// MalformedTrailerError (400).
	ErrMalformedTrailer = errors.New("the request contained trailing data that was not well-formed")
	// NotImplemented (501): SigV4a, the SigV2 Authorization header and
	// other schemes Bulwark does not verify.
	ErrNotImplemented = errors.New("a header you provided implies functionality that is not implemented")
)

// Credential is a secret a request may be signed with.
type Credential struct {
	AccessKey string
	Secret    string
	// Principal is opaque to this package and echoed back in Result.
	Principal string
}

// Lookup finds the credential for an access key. It returns an error
// wrapping ErrInvalidAccessKeyID for keys it does not know; any other error
// is passed through as a server-side failure.
type Lookup func(ctx context.Context, accessKey string) (Credential, error)

// Defaults for the zero Verifier fields.
const (
	DefaultMaxSkew      = 15 * time.Minute
	DefaultService      = "s3"
	DefaultMaxChunkSize = 16 << 20
)

// Verifier checks request signatures. The zero value plus a Lookup is ready
// to use; it is safe for concurrent use as long as its fields are not
// changed. Bulwark must see the Host header the client signed, so a proxy
// in front of it has to pass Host through unchanged.
type Verifier struct {
	Lookup Lookup
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew bounds the distance between a signed request's date and Now,
	// and how far in the future a presigned URL may be dated; 0 means
	// DefaultMaxSkew.
	MaxSkew time.Duration
	// Service is the service the credential scope must name; "" means
	// DefaultService.
	Service string
	// Services, if non-empty, lists every accepted scope service instead
	// of Service.
	Services []string
	// Regions, if non-empty, lists the regions the credential scope may
	// name; the first is the one reported to a client that got it wrong.
	Regions []string
	// MaxChunkSize caps a signed aws-chunked chunk, which is buffered whole
	// so that no byte of a chunk is handed out before its signature holds;
	// 0 means DefaultMaxChunkSize.
	MaxChunkSize int64
}

// Result tells who signed a request and how to read its body.
type Result struct {
	// Anonymous is set when the request carries no signature at all; the
	// caller decides whether anonymous access is allowed.
	Anonymous bool
	// Credential is the credential that signed the request.
	Credential Credential
	// Region is the region of the credential scope; empty for a
	// Signature Version 2 URL, which has no scope.
	Region string
	// Service is the service of the credential scope; empty for V2.
	Service string
	// Presigned is set for query-string (presigned URL) authentication.
	Presigned bool
	// SigningTime is the signed request date; zero for V2, which signs
	// only the expiry.
	SigningTime time.Time
	// Expires is when a presigned URL stops being valid; zero otherwise.
	Expires time.Time
	// SessionToken is X-Amz-Security-Token, from the query or a header.
	SessionToken string
	// PayloadHash is the x-amz-content-sha256 value as sent, or
	// UNSIGNED-PAYLOAD for a presigned URL that did not send one.
	PayloadHash string
	// Chunked is set when the body is aws-chunked; Body already removes
	// the framing, and the caller should drop "aws-chunked" from the
	// Content-Encoding it stores.
	Chunked bool
	// DeclaredTrailers lists the lower-case trailer names announced in
	// x-amz-trailer.
	DeclaredTrailers []string
	// Body replaces r.Body. It verifies the payload as it is read and
	// reports a failure in place of io.EOF.
	Body io.ReadCloser
	// DecodedLength is the payload length: x-amz-decoded-content-length
	// for aws-chunked bodies, else r.ContentLength; -1 if unknown.
	DecodedLength int64
	// Trailer returns the trailers received after an aws-chunked body. It
	// returns nil until Body has returned io.EOF. It is never nil itself.
	Trailer func() http.Header
}

// Verify checks the signature of r. It does not read the body: payload
// verification happens as Result.Body is read. A request with no
// signature yields a Result with Anonymous set and no error.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (*Result, error) {
	target := requestTarget(r)
	query, err := parseQuery(target.rawQuery)
	if err != nil {
		return nil, err
	}
	auth := r.Header.Values("Authorization")
	presigned := query.has(paramSignature) || query.has(paramAlgorithm) || query.has(paramCredential)
	presignedV2 := !presigned && isPresignedV2(query)
	var sr *signedRequest
	switch {
	case len(auth) > 0 && (presigned || presignedV2):
		return nil, fmt.Errorf("%w: only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified", ErrInvalidArgument)
	case len(auth) > 1:
		return nil, fmt.Errorf("%w: more than one Authorization header", ErrAuthorizationHeaderMalformed)
	case len(auth) == 1:
		sr, err = parseHeaderAuth(r, auth[0])
	case presigned:
		sr, err = parsePresigned(r, query)
	case presignedV2:
		return v.verifyPresignedV2(ctx, r, target, query)
	default:
		return v.anonymousResult(r)
	}
	if err != nil {
		return nil, err
	}
	if err := v.checkScope(sr); err != nil {
		return nil, err
	}
	if err := v.checkTime(sr); err != nil {
		return nil, err
	}
	if err := checkSignedHeaders(r, sr); err != nil {
		return nil, err
	}
	// S3 requires x-amz-content-sha256; the SDKs sign every other
	// service's requests with the body's hash and send no header.
	if sr.payloadHash == "" && sr.service == DefaultService {
		return nil, fmt.Errorf("%w: missing required header for this request: x-amz-content-sha256", ErrInvalidRequest)
	}
	if sr.payloadHash == "" {
		if err := hashBody(r, sr); err != nil {
			return nil, err
		}
	}
	mode, err := parsePayloadMode(sr.payloadHash)
	if err != nil {
		return nil, err
	}
	if v.Lookup == nil {
		return nil, errors.New("verify signature: no credential lookup configured")
	}
	cred, err := v.Lookup(ctx, sr.accessKey)
	if err != nil {
		return nil, fmt.Errorf("look up access key: %w", err)
	}
	key := signingKey(cred.Secret, sr.date, sr.region, sr.service)
	seed, err := verifySignature(r, target, query, sr, key)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Credential:   cred,
		Region:       sr.region,
		Service:      sr.service,
		Presigned:    sr.presigned,
		SigningTime:  sr.time,
		SessionToken: sr.sessionToken,
		PayloadHash:  sr.payloadHash,
	}
	if sr.presigned {
		res.Expires = sr.time.Add(sr.expires)
	}
	chain := &chunkSigner{key: key, amzDate: sr.amzDate, scope: sr.scope(), prev: seed}
	if err := v.attachBody(res, r, mode, chain); err != nil {
		return nil, err
	}
	return res, nil
}

// anonymousResult still decodes and checks the payload: an unsigned client
// may send a hex sha256 or an unsigned aws-chunked body with trailers.
func (v *Verifier) anonymousResult(r *http.Request) (*Result, error) {
	res := &Result{Anonymous: true, PayloadHash: r.Header.Get(headerContentSHA256)}
	mode := payloadMode{kind: payloadUnsigned}
	if res.PayloadHash != "" {
		var err error
		if mode, err = parsePayloadMode(res.PayloadHash); err != nil {
			return nil, err
		}
		if mode.signedChunks() {
			return nil, fmt.Errorf("%w: %s on a request that is not signed", ErrInvalidRequest, res.PayloadHash)
		}
	}
	if err := v.attachBody(res, r, mode, nil); err != nil {
		return nil, err
	}
	return res, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return DefaultMaxSkew
}

func (v *Verifier) services() []string {
	if len(v.Services) > 0 {
		return v.Services
	}
	if v.Service != "" {
		return []string{v.Service}
	}
	return []string{DefaultService}
}

func (v *Verifier) maxChunkSize() int64 {
	if v.MaxChunkSize > 0 {
		return v.MaxChunkSize
	}
	return DefaultMaxChunkSize
}

// MaxHashedBody bounds the body of a request to a service other than S3
// that sends no x-amz-content-sha256: it is read whole to hash it.
const MaxHashedBody = 1 << 20

// hashBody computes the payload hash of a request that does not send one,
// as the SDKs sign IAM, STS and every non-S3 service: the hex sha256 of
// the body, which is read whole and put back.
func hashBody(r *http.Request, sr *signedRequest) error {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxHashedBody+1))
		if err != nil {
			return bodyError(err)
		}
		if len(b) > MaxHashedBody {
			return fmt.Errorf("%w: %w: body larger than %d bytes", ErrInvalidRequest, ErrBodyTooLarge, MaxHashedBody)
		}
		body = b
	}
	sum := sha256.Sum256(body)
	sr.payloadHash = hex.EncodeToString(sum[:])
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}
