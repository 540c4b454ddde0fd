package s3api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// signedChunkedPut builds a PUT whose body is aws-chunked with a signature
// on every chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), and optionally a
// signed CRC32 trailer (...-PAYLOAD-TRAILER), as AWS documents them. tamper
// changes one byte of the second chunk's data after signing.
func signedChunkedPut(t *testing.T, url string, data []byte, chunk int, trailer, tamper bool) *http.Request {
	t.Helper()
	now := time.Now().UTC()
	amzDate, day := now.Format("20060102T150405Z"), now.Format("20060102")
	scope := day + "/us-west-2/s3/aws4_request"
	mode := "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	if trailer {
		mode += "-TRAILER"
	}
	var chunks [][]byte
	for off := 0; off < len(data); off += chunk {
		chunks = append(chunks, data[off:min(off+chunk, len(data))])
	}
	chunks = append(chunks, nil)
	// The encoded length must be known before signing the seed.
	encLen := 0
	for _, c := range chunks {
		encLen += len(strconv.FormatInt(int64(len(c)), 16)) + len(";chunk-signature=") + 64 + 2 + len(c)
		if len(c) > 0 || !trailer {
			encLen += 2
		}
	}
	crc := crc32.ChecksumIEEE(data)
	crcB64 := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc))
	trailerLine := "x-amz-checksum-crc32:" + crcB64
	if trailer {
		encLen += len(trailerLine) + 2 + len("x-amz-trailer-signature:") + 64 + 2 + 2
	}
	req, _ := http.NewRequest(http.MethodPut, url, nil)
	req.Header.Set("x-amz-content-sha256", mode)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("x-amz-decoded-content-length", strconv.Itoa(len(data)))
	if trailer {
		req.Header.Set("x-amz-trailer", "x-amz-checksum-crc32")
	}
	req.ContentLength = int64(encLen)
	creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, mode, "s3", "us-west-2", now); err != nil {
		t.Fatal(err)
	}
	auth := req.Header.Get("Authorization")
	prev := auth[strings.LastIndex(auth, "Signature=")+len("Signature="):]
	key := hmacSHA256([]byte("AWS4"+servertest.SecretKey), day)
	for _, s := range []string{"us-west-2", "s3", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	var body bytes.Buffer
	for i, c := range chunks {
		sts := strings.Join([]string{"AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope, prev, hexSHA256(nil), hexSHA256(c)}, "\n")
		prev = hex.EncodeToString(hmacSHA256(key, sts))
		sent := c
		if tamper && i == 1 {
			sent = bytes.Clone(c)
			sent[0] ^= 1
		}
		fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n", len(c), prev)
		body.Write(sent)
		if len(c) > 0 || !trailer {
			body.WriteString("\r\n")
		}
	}
	if trailer {
		sts := strings.Join([]string{"AWS4-HMAC-SHA256-TRAILER", amzDate, scope, prev, hexSHA256([]byte(trailerLine + "\n"))}, "\n")
		fmt.Fprintf(&body, "%s\r\nx-amz-trailer-signature:%s\r\n\r\n", trailerLine, hex.EncodeToString(hmacSHA256(key, sts)))
	}
	if body.Len() != encLen {
		t.Fatalf("encoded length %d, computed %d", body.Len(), encLen)
	}
	req.Body = nopCloser{bytes.NewReader(body.Bytes())}
	return req
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestSignedChunkedUploads(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "chunks")
	data := bytes.Repeat([]byte("signed chunk payload "), 10000) // 210,000 bytes
	for _, trailer := range []bool{false, true} {
		key := fmt.Sprintf("signed-trailer-%v", trailer)
		st, body, hdr := do(t, r, signedChunkedPut(t, r.URL()+"/chunks/"+key, data, 64<<10, trailer, false))
		if st != 200 {
			t.Fatalf("trailer=%v: %d %s", trailer, st, body)
		}
		if trailer && hdr.Get("x-amz-checksum-crc32") == "" {
			t.Fatalf("trailer checksum not echoed: %v", hdr)
		}
		if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("chunks"), Key: aws.String(key)}); got != string(data) {
			t.Fatalf("trailer=%v: stored body differs", trailer)
		}
		// One flipped byte in the second chunk: the chunk signature fails and
		// nothing is stored.
		st, body, _ = do(t, r, signedChunkedPut(t, r.URL()+"/chunks/tampered", data, 64<<10, trailer, true))
		wantXMLError(t, st, body, 403, "SignatureDoesNotMatch")
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("chunks"), Key: aws.String("tampered")})
		wantCode(t, err, "NotFound", 404)
	}
}
