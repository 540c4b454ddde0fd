package s3api

import (
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/awsmodel"
)

// TestRequestFieldsCoverTheModel checks that every header and query
// parameter of every operation Bulwark implements, as AWS's model has
// them, is honoured, refused, or ignored for a reason written down: none
// is dropped without anyone having decided.
func TestRequestFieldsCoverTheModel(t *testing.T) {
	m := awsmodel.Require(t, "s3")
	ops := ImplementedOperations(t, m)
	t.Logf("%d operations implemented: %v", len(ops), ops)
	if len(ops) < 40 {
		t.Fatalf("only %d operations of the model route to a handler: %v", len(ops), ops)
	}
	for _, op := range ops {
		for _, f := range m.Fields(op) {
			name := strings.ToLower(f.Name)
			rule, ok := fieldRuleOf(op, name)
			switch {
			case !ok:
				t.Errorf("%s: %s %q (%s) is neither honoured, refused nor ignored: add it to requestFields", op, f.Location, f.Name, f.Member)
			case rule.use == ignored && rule.why == "":
				t.Errorf("%s: %q is ignored without a reason", op, f.Name)
			case rule.use == refused && rule.refuse == nil:
				t.Errorf("%s: %q is refused without an error", op, f.Name)
			}
		}
	}
	// A field only the table knows is a typo or a field AWS dropped.
	known := map[string]bool{}
	for _, op := range m.OperationNames() {
		for _, f := range m.Fields(op) {
			known[strings.ToLower(f.Name)] = true
		}
	}
	for name := range requestFields {
		if !known[name] {
			t.Errorf("requestFields lists %q, which no operation of the model has", name)
		}
	}
}
