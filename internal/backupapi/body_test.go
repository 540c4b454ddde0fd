package backupapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/smithy-go"
)

// TestOversizedBody sends a body over the 1 MiB the API reads: the answer
// is a 413 naming the limit and the operation, and nothing is created.
func TestOversizedBody(t *testing.T) {
	e := newEnv(t)
	c := e.sdk(rootAccess, rootSecret)
	// A little over the limit, so that the server drains the rest and the
	// client reads the answer rather than a reset connection.
	_, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{
		BackupVaultName: aws.String("big"), CreatorRequestId: aws.String(strings.Repeat("x", 1<<20+1024)),
	})
	wantCode(t, err, "RequestEntityTooLargeException", 413)
	var ae smithy.APIError
	if want := "Request must be smaller than 1048576 bytes for the CreateBackupVault operation"; !errors.As(err, &ae) || ae.ErrorMessage() != want {
		t.Fatalf("message of %v, want %q", err, want)
	}
	_, err = c.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: aws.String("big")})
	wantCode(t, err, "ResourceNotFoundException", 400)

	// Under the limit the body is read and the call runs.
	_, err = c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{
		BackupVaultName: aws.String("big"), CreatorRequestId: aws.String(strings.Repeat("x", 50)),
	})
	if err != nil {
		t.Fatal(err)
	}
}
