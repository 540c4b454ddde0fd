package s3api

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// Bucket CORS: the configuration calls, the preflight OPTIONS request, and
// the CORS headers on actual requests. The object store keeps the
// configuration as the client sent it; it is parsed here on every use.

const (
	// maxCORSRules is S3's limit on rules in one configuration.
	maxCORSRules = 100
	// maxCORSBody is S3's limit on the configuration document.
	maxCORSBody = 64 << 10
	// maxCORSRuleID is S3's limit on a rule's ID, in characters.
	maxCORSRuleID = 255
)

// corsMethods are the methods a rule may allow.
var corsMethods = []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead}

type corsConfiguration struct {
	XMLName xml.Name   `xml:"CORSConfiguration"`
	NS      string     `xml:"xmlns,attr,omitempty"`
	Rules   []corsRule `xml:"CORSRule"`
}

type corsRule struct {
	ID             string   `xml:"ID,omitempty"`
	AllowedHeaders []string `xml:"AllowedHeader"`
	AllowedMethods []string `xml:"AllowedMethod"`
	AllowedOrigins []string `xml:"AllowedOrigin"`
	ExposeHeaders  []string `xml:"ExposeHeader"`
	MaxAgeSeconds  *int     `xml:"MaxAgeSeconds"`
}

// validate applies S3's rules. Where S3 answers with a schema violation
// (a missing element, too many rules) the answer is MalformedXML.
func (c *corsConfiguration) validate() error {
	if len(c.Rules) == 0 || len(c.Rules) > maxCORSRules {
		return errMalformedXML
	}
	for _, rule := range c.Rules {
		if len(rule.AllowedMethods) == 0 || len(rule.AllowedOrigins) == 0 {
			return errMalformedXML
		}
		if rule.MaxAgeSeconds != nil && *rule.MaxAgeSeconds < 0 {
			return errMalformedXML
		}
		if len([]rune(rule.ID)) > maxCORSRuleID {
			return errf("InvalidArgument", 400, "The ID of a CORSRule cannot be longer than %d characters", maxCORSRuleID)
		}
		for _, m := range rule.AllowedMethods {
			if !slices.Contains(corsMethods, m) {
				return errf("InvalidRequest", 400, "Found unsupported HTTP method in CORS config. Unsupported method is %s", m)
			}
		}
		for _, o := range rule.AllowedOrigins {
			if strings.Count(o, "*") > 1 {
				return errf("InvalidRequest", 400, "AllowedOrigin %q can not have more than one wildcard.", o)
			}
		}
		for _, hdr := range rule.AllowedHeaders {
			if strings.Count(hdr, "*") > 1 {
				return errf("InvalidRequest", 400, "AllowedHeader %q can not have more than one wildcard.", hdr)
			}
		}
	}
	return nil
}

// bucketCORS reads and parses a bucket's configuration; nil means none.
func (h *Handler) bucketCORS(ctx context.Context, bucket string) (*corsConfiguration, error) {
	b, err := h.store.Bucket(ctx, bucket)
	if err != nil || len(b.CORS) == 0 {
		return nil, err
	}
	var c corsConfiguration
	if err := xml.Unmarshal(b.CORS, &c); err != nil {
		return nil, fmt.Errorf("decode CORS configuration of %q: %w", bucket, err)
	}
	return &c, nil
}

// putBucketCORS stores the document exactly as sent, once it is verified
// against its Content-MD5 or checksum, parsed and validated.
func (h *Handler) putBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	if _, err := h.store.Bucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	var raw bytes.Buffer
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(r.Body, &raw), r.Body}
	var cfg corsConfiguration
	if err := decodeVerifiedXML(r, rq, &cfg, maxCORSBody); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if err := h.store.SetBucketCORS(r.Context(), rq.bucket, raw.Bytes()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) getBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	cfg, err := h.bucketCORS(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if cfg == nil {
		e := *errNoSuchCORSConfiguration
		e.Extra = []xmlField{{XMLName: xml.Name{Local: "BucketName"}, Value: rq.bucket}}
		return &e
	}
	cfg.NS = xmlNS
	writeXML(w, http.StatusOK, cfg)
	return nil
}

func (h *Handler) deleteBucketCORS(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.SetBucketCORS(r.Context(), rq.bucket, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// preflight answers a CORS preflight OPTIONS request from the bucket's
// rules. Browsers send preflights without credentials, so it runs before,
// and without, authentication; it reveals only what the rules allow.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request, rq *request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return errCORSNoOrigin
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if method == "" {
		return errCORSNoMethod
	}
	cfg, err := h.bucketCORS(r.Context(), rq.bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return corsForbidden(errCORSBucketNotFound, method, "BUCKET")
	}
	if err != nil {
		return err
	}
	if cfg == nil {
		return corsForbidden(errCORSNotEnabled, method, "BUCKET")
	}
	requested := requestedHeaders(r.Header.Values("Access-Control-Request-Headers"))
	rule := cfg.match(origin, method, requested)
	if rule == nil {
		kind := "OBJECT"
		if rq.key == "" {
			kind = "BUCKET"
		}
		return corsForbidden(errCORSNotAllowed, method, kind)
	}
	setCORSHeaders(w.Header(), rule, origin)
	if len(requested) > 0 {
		w.Header().Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return nil
}

// addCORSHeaders gives an actual request from an allowed origin its CORS
// headers. They are set before the request is authenticated or served, so
// that errors carry them too: a browser shows a script the error only if
// they are there. As in S3, Access-Control-Request-Method, when sent,
// stands in for the request's method, and the request's own headers are
// not checked.
func (h *Handler) addCORSHeaders(w http.ResponseWriter, r *http.Request, rq *request) {
	cfg, err := h.bucketCORS(r.Context(), rq.bucket)
	if err != nil || cfg == nil {
		return
	}
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if method == "" {
		method = r.Method
	}
	if rule := cfg.match(origin, method, nil); rule != nil {
		setCORSHeaders(w.Header(), rule, origin)
	}
}

// match returns the first rule that allows origin, method and every
// requested header, or nil.
func (c *corsConfiguration) match(origin, method string, headers []string) *corsRule {
	for i := range c.Rules {
		rule := &c.Rules[i]
		if _, ok := rule.matchOrigin(origin); !ok || !slices.Contains(rule.AllowedMethods, method) {
			continue
		}
		if allowsHeaders(rule.AllowedHeaders, headers) {
			return rule
		}
	}
	return nil
}

// matchOrigin returns the first allowed origin pattern that matches.
func (rule *corsRule) matchOrigin(origin string) (string, bool) {
	for _, o := range rule.AllowedOrigins {
		if wildcardMatch(o, origin) {
			return o, true
		}
	}
	return "", false
}

func allowsHeaders(allowed, requested []string) bool {
	for _, name := range requested {
		ok := false
		for _, a := range allowed {
			if wildcardMatch(strings.ToLower(a), name) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// wildcardMatch matches s against a pattern with at most one '*', which
// stands for any run of characters, the empty one included.
func wildcardMatch(pattern, s string) bool {
	prefix, suffix, star := strings.Cut(pattern, "*")
	if !star {
		return pattern == s
	}
	return len(s) >= len(prefix)+len(suffix) && strings.HasPrefix(s, prefix) && strings.HasSuffix(s, suffix)
}

// requestedHeaders reads Access-Control-Request-Headers: names separated by
// commas and optional spaces, lower-cased, in the order sent.
func requestedHeaders(values []string) []string {
	var names []string
	for _, v := range values {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// setCORSHeaders writes the headers a matched rule grants. A rule whose
// origin is exactly "*" grants any origin without credentials; any other
// echoes the origin, with credentials allowed, as S3 does.
func setCORSHeaders(hdr http.Header, rule *corsRule, origin string) {
	if pattern, _ := rule.matchOrigin(origin); pattern == "*" {
		hdr.Set("Access-Control-Allow-Origin", "*")
	} else {
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
	hdr.Set("Access-Control-Allow-Methods", strings.Join(rule.AllowedMethods, ", "))
	if len(rule.ExposeHeaders) > 0 {
		hdr.Set("Access-Control-Expose-Headers", strings.Join(rule.ExposeHeaders, ", "))
	}
	if rule.MaxAgeSeconds != nil {
		hdr.Set("Access-Control-Max-Age", strconv.Itoa(*rule.MaxAgeSeconds))
	}
	hdr.Set("Vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
}

// corsForbidden is a refused preflight, with the elements S3 adds to say
// what was refused.
func corsForbidden(base *APIError, method, resourceType string) *APIError {
	e := *base
	e.Extra = []xmlField{
		{XMLName: xml.Name{Local: "Method"}, Value: method},
		{XMLName: xml.Name{Local: "ResourceType"}, Value: resourceType},
	}
	return &e
}
