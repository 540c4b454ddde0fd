package s3api

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/awsmodel"
)

// ImplementedOperations lists the operations of AWS's S3 model that
// Bulwark routes to a handler: each one's request, built from the model,
// routed as a request from a client would be.
func ImplementedOperations(t testing.TB, m *awsmodel.Model) []string {
	t.Helper()
	h := &Handler{}
	var out []string
	for _, op := range m.OperationNames() {
		req, err := m.Request(op, "http://127.0.0.1", "walk-bucket", "walk/key", nil)
		if err != nil {
			t.Fatal(err)
		}
		bucket, key, _ := h.splitTarget(req)
		rq := &request{bucket: bucket, key: key, query: req.URL.Query()}
		if got, fn := h.route(req, rq); fn != nil && got == op {
			out = append(out, op)
		}
	}
	return out
}

// RefusedSample returns a value of field name that op refuses, and the
// error code it answers; "" when op refuses no value of it.
func RefusedSample(op, name string) (value, code string) {
	rule, ok := fieldRuleOf(op, strings.ToLower(name))
	if !ok || rule.use != refused {
		return "", ""
	}
	for _, v := range []string{"true", "AES256", "aws:kms", "COMPLIANCE", "ON", "ObjectWriter", "account-regional", "2030-01-01T00:00:00Z", "1", "x"} {
		var ae *APIError
		if err := rule.refuse(op, v); errors.As(err, &ae) {
			return v, ae.Code
		}
	}
	return "", ""
}
