package s3api

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzXMLBodies feeds arbitrary request bodies to the XML decoders: they
// must never panic, and must either decode or answer with an S3 error.
func FuzzXMLBodies(f *testing.F) {
	for _, s := range []string{
		`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>`,
		`<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>`,
		`<VersioningConfiguration><Status>Suspended</Status>`,
		strings.Repeat("<a>", 200),
		"",
		"\x00\xff<?xml?>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, target := range []any{&createBucketConfiguration{}, &versioningConfiguration{}} {
			r, _ := http.NewRequest(http.MethodPut, "/b", bytes.NewReader(body))
			err := decodeXMLBody(r, target, true)
			var ae *APIError
			if err != nil && !errors.As(err, &ae) {
				t.Fatalf("decode returned a non-S3 error: %v", err)
			}
		}
	})
}

// FuzzParseRange checks that any Range header yields a range inside the
// object or an error, never a panic or an out-of-bounds slice.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-1", "bytes=5-", "bytes=9-3", "bytes=0-1,4-5", "bytes=-0", "items=1-2", "bytes=99999999999999999999-"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		start, length, ranged, err := parseRange(h, size)
		if err != nil {
			return
		}
		if start < 0 || length < 0 || start+length > size || (!ranged && (start != 0 || length != size)) {
			t.Fatalf("parseRange(%q, %d) = %d, %d, %v", h, size, start, length, ranged)
		}
	})
}

func TestDeepXMLRefused(t *testing.T) {
	body := strings.Repeat("<VersioningConfiguration>", 100000)
	r, _ := http.NewRequest(http.MethodPut, "/b", strings.NewReader(body))
	if err := decodeXMLBody(r, &versioningConfiguration{}, false); err == nil {
		t.Fatal("deeply nested XML accepted")
	}
	big := "<VersioningConfiguration><Status>" + strings.Repeat("x", maxXMLBody) + "</Status></VersioningConfiguration>"
	r, _ = http.NewRequest(http.MethodPut, "/b", strings.NewReader(big))
	err := decodeXMLBody(r, &versioningConfiguration{}, false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "MalformedXML" {
		t.Fatalf("oversize XML: %v", err)
	}
}
