package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"golang.org/x/time/rate"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// The replica write, as the destination's S3 endpoint takes it (see
// s3api.ReplicationHeader): a PUT on the object whose body is the JSON
// description of the version followed by its data.
const (
	replicationHeader = "X-Bulwark-Replication"
	metaLengthHeader  = "X-Bulwark-Replica-Meta-Length"
	// ownerOverrideHeader asks the destination to make its bucket's owner
	// the replica's owner (AccessControlTranslation).
	ownerOverrideHeader = "X-Bulwark-Owner-Override"
)

// result is the outcome of one attempt.
type result struct {
	transient bool   // try again after a backoff
	skipped   bool   // nothing to send any more (the source version is gone)
	code      string // error code; "" on success
	reason    string
}

func (r result) failed() bool { return !r.transient && !r.skipped && r.code != "" }

func transient(code, format string, args ...any) result {
	return result{transient: true, code: code, reason: code + ": " + fmt.Sprintf(format, args...)}
}

func permanent(code, format string, args ...any) result {
	return result{code: code, reason: code + ": " + fmt.Sprintf(format, args...)}
}

// permanentCodes are the destination's answers that retrying cannot
// change until someone fixes a bucket, its versioning or a policy.
var permanentCodes = map[string]bool{
	"NoSuchBucket": true, "InvalidBucketState": true, "AccessDenied": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidArgument": true,
	"InvalidStorageClass": true, "MalformedJSON": true, "NotImplemented": true,
	"KeyTooLongError": true, "MetadataTooLarge": true, "InvalidTag": true,
	"NoSuchVersion": true, "NoSuchKey": true, "MethodNotAllowed": true,
}

// send makes one attempt at a task.
func (e *Engine) send(ctx context.Context, t *Task, limiter *rate.Limiter) result {
	src, err := e.store.Bucket(ctx, t.Bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return result{skipped: true, reason: "source bucket deleted"}
	}
	if err != nil {
		return transient("InternalError", "read source bucket: %v", err)
	}
	role := t.Role
	if role == "" && len(src.Replication) > 0 {
		if cfg, err := Decode(src.Replication); err == nil {
			role = cfg.Role
		}
	}
	creds, err := e.roleCreds(ctx, role)
	if errors.Is(err, iam.ErrAccessDenied) || errors.Is(err, iam.ErrInvalidInput) || errors.Is(err, iam.ErrNoSuchEntity) {
		return permanent("AccessDenied", "replication cannot assume role %s: %v", role, err)
	}
	if err != nil {
		return transient("InternalError", "assume role %s: %v", role, err)
	}
	// The role must be allowed to read what it sends.
	objectARN := "arn:aws:s3:::" + t.Bucket + "/" + t.Key
	readAction := "s3:GetObjectVersionForReplication"
	if t.Op == OpTags {
		readAction = "s3:GetObjectVersionTagging"
	}
	if err := e.mayOnSource(ctx, creds, readAction, objectARN, src.Owner); err != nil {
		e.forgetRole(role)
		return permanent("AccessDenied", "role %s may not %s on %s", role, readAction, objectARN)
	}
	withTags := e.mayOnSource(ctx, creds, "s3:GetObjectVersionTagging", objectARN, src.Owner) == nil
	endpoint, region, err := e.cfg.Locate(ctx, t.Dest)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return permanent("NoSuchBucket", "destination bucket %s does not exist in any reachable region", t.Dest)
	}
	if err != nil {
		return transient("RegionUnreachable", "locate destination bucket %s: %v", t.Dest, err)
	}

	v, err := e.store.Version(ctx, t.Bucket, t.Key, t.VersionID)
	if errors.Is(err, objectstore.ErrNoSuchVersion) {
		return result{skipped: true, reason: "source version deleted"}
	}
	if err != nil {
		return transient("InternalError", "read source version: %v", err)
	}
	m := objectstore.ReplicaMetaOf(v)
	if !withTags {
		m.Tags = nil // a role that may not read tags replicates without them
	}
	var data io.Reader = http.NoBody
	size := int64(0)
	switch t.Op {
	case OpObject:
		if v.DeleteMarker {
			return result{skipped: true, reason: "source version is a delete marker"}
		}
		_, body, err := e.store.GetObject(ctx, t.Bucket, t.Key, t.VersionID)
		if errors.Is(err, objectstore.ErrNoSuchVersion) || errors.Is(err, objectstore.ErrNoSuchKey) {
			return result{skipped: true, reason: "source version deleted"}
		}
		if err != nil {
			return transient("InternalError", "open source version: %v", err)
		}
		defer body.Close()
		data, size = body, v.Size
		if limiter != nil {
			data = &limitedReader{ctx: ctx, r: body, l: limiter}
		}
	case OpTags:
		m = &objectstore.ReplicaMeta{VersionID: v.VersionID, Tags: v.Tags}
	}
	desc, err := json.Marshal(m)
	if err != nil {
		return permanent("InternalError", "encode replica description: %v", err)
	}
	u := strings.TrimSuffix(endpoint, "/") + "/" + t.Dest + "/" + escapeKey(t.Key)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, io.MultiReader(bytes.NewReader(desc), data))
	if err != nil {
		return permanent("InvalidArgument", "build request: %v", err)
	}
	req.ContentLength = int64(len(desc)) + size
	req.Header.Set(replicationHeader, t.Op)
	req.Header.Set(metaLengthHeader, strconv.Itoa(len(desc)))
	req.Header.Set("Content-Type", "application/octet-stream")
	if t.StorageClass != "" {
		req.Header.Set("x-amz-storage-class", t.StorageClass)
	}
	if t.OwnerOverride {
		req.Header.Set(ownerOverrideHeader, "Destination")
	}
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	// S3 signs the path as sent, not escaped a second time.
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(ctx, aws.Credentials{AccessKeyID: creds.AccessKey, SecretAccessKey: creds.Secret, SessionToken: creds.Token}, req, "UNSIGNED-PAYLOAD", "s3", region, e.now()); err != nil {
		return permanent("InternalError", "sign request: %v", err)
	}
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return transient("Canceled", "%v", ctx.Err())
		}
		return transient("RegionUnreachable", "destination bucket %s in %s: %v", t.Dest, region, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return result{}
	}
	code, msg := errorOf(resp)
	if code == "InvalidToken" || code == "ExpiredToken" {
		// A session that ran out or was lost: a new one may do.
		e.forgetRole(role)
		return transient(code, "%s (destination bucket %s in %s)", msg, t.Dest, region)
	}
	if permanentCodes[code] {
		switch code {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			// The session may be what the destination refuses (say, a
			// region that no longer knows it): the automatic retry of
			// failures asks for a new one.
			e.forgetRole(role)
		}
		return permanent(code, "%s (destination bucket %s in %s, acting as %s)", msg, t.Dest, region, role)
	}
	return transient(code, "%s (HTTP %d from destination bucket %s in %s)", msg, resp.StatusCode, t.Dest, region)
}

// errorOf reads an S3 error response.
func errorOf(resp *http.Response) (code, msg string) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(raw, &e) != nil || e.Code == "" {
		return fmt.Sprintf("HTTP%d", resp.StatusCode), http.StatusText(resp.StatusCode)
	}
	return e.Code, e.Message
}

// escapeKey escapes an object key for a URL path, keeping its slashes.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// limitedReader paces reads to a rate limiter: the per-destination
// bandwidth cap.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if len(p) > r.l.Burst() {
		p = p[:r.l.Burst()]
	}
	n, err := r.r.Read(p)
	if n > 0 {
		if werr := r.l.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}
