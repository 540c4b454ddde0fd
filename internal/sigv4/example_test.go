package sigv4

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"
)

// Verifying the presigned URL from the S3 documentation.
func ExampleVerifier_Verify() {
	v := &Verifier{
		Lookup: func(ctx context.Context, accessKey string) (Credential, error) {
			if accessKey == "AKIAIOSFODNN7EXAMPLE" {
				return Credential{AccessKey: accessKey, Secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Principal: "alice"}, nil
			}
			return Credential{}, ErrInvalidAccessKeyID
		},
		Now:     func() time.Time { return time.Date(2013, 5, 24, 12, 0, 0, 0, time.UTC) },
		Regions: []string{"us-east-1"},
	}
	req := httptest.NewRequest("GET", "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", nil)
	res, err := v.Verify(req.Context(), req)
	if err != nil {
		fmt.Println("denied:", err)
		return
	}
	fmt.Println(res.Credential.Principal, res.Presigned, res.Expires.Format(http.TimeFormat))
	// Output: alice true Sat, 25 May 2013 00:00:00 GMT
}
