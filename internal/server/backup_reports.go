package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// openAudit makes the region's Backup Audit Manager, whose report jobs
// write their reports into the region's buckets through reportWriter.
func (r *Region) openAudit() {
	r.Audit = backup.NewAudit(backup.AuditConfig{Jobs: r.Jobs, Writer: reportWriter{r}, Logger: r.log})
}

// reportWriter delivers Backup Audit Manager's reports into a bucket of
// the region, as the report plan's account: the account's root user must
// be allowed s3:PutObject on the key, by its own ownership of the bucket
// or by the bucket's policy, and no policy may deny it. AWS writes as a
// service-linked role of the account; Bulwark has none and judges the
// account itself.
type reportWriter struct{ r *Region }

func (w reportWriter) WriteReport(ctx context.Context, account, bucket, key, contentType string, body []byte) error {
	b, err := w.r.Store.Bucket(ctx, bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		if other, lerr := w.r.lookupBucket(ctx, bucket); lerr == nil && other.Region != "" {
			return fmt.Errorf("the S3 bucket %s is in %s: reports are delivered into buckets of the report plan's region, %s", bucket, other.Region, w.r.cfg.Region)
		}
		return fmt.Errorf("the S3 bucket %s does not exist", bucket)
	}
	if err != nil {
		return err
	}
	root := &iam.Principal{AccountID: account, ARN: iam.RootARN(account)}
	areq := &iam.Request{Principal: root, Action: "s3:PutObject", Resource: "arn:aws:s3:::" + bucket + "/" + key, ResourceOwner: b.Owner}
	if len(b.Policy) > 0 {
		areq.ResourcePolicy, areq.ResourcePolicyKind = b.Policy, iam.ResourceKind
	}
	if err := w.r.authz.Authorize(ctx, areq); err != nil {
		return fmt.Errorf("account %s may not write into the S3 bucket %s: %w", account, bucket, err)
	}
	_, err = w.r.Store.PutObject(ctx, &objectstore.PutInput{Bucket: bucket, Key: key, Owner: account, Body: bytes.NewReader(body),
		Size: int64(len(body)), ContentType: contentType})
	return err
}
