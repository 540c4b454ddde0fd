// Package awsmodel reads AWS's service models as botocore ships them
// (data/<service>/<version>/service-2.json.gz), for the tests that hold
// Bulwark's wire to AWS's: the operations, their HTTP bindings and the
// fields of their requests.
package awsmodel

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Model is one service's model.
type Model struct {
	Operations map[string]Operation `json:"operations"`
	Shapes     map[string]Shape     `json:"shapes"`
}

// Operation is one API operation and its HTTP binding.
type Operation struct {
	Name string `json:"name"`
	HTTP struct {
		Method     string `json:"method"`
		RequestURI string `json:"requestUri"`
	} `json:"http"`
	Input *Ref `json:"input"`
}

// Ref is a reference to a shape, with where a member travels.
type Ref struct {
	Shape        string `json:"shape"`
	Location     string `json:"location"` // "header", "headers" (a prefix), "querystring", "uri" or "" (body)
	LocationName string `json:"locationName"`
}

// Shape is a type of the model.
type Shape struct {
	Type     string         `json:"type"`
	Members  map[string]Ref `json:"members"`
	Required []string       `json:"required"`
	Enum     []string       `json:"enum"`
}

// Field is a header or query parameter of an operation's request.
type Field struct {
	Member   string // the member's name in the model
	Location string // "header", "headers" or "querystring"
	Name     string // the header (prefix) or parameter name as sent
	Required bool
	Shape    Shape
}

// Fields lists op's header and query fields, sorted by name.
func (m *Model) Fields(op string) []Field {
	o, ok := m.Operations[op]
	if !ok || o.Input == nil {
		return nil
	}
	in := m.Shapes[o.Input.Shape]
	var out []Field
	for name, ref := range in.Members {
		switch ref.Location {
		case "header", "headers", "querystring":
		default:
			continue
		}
		f := Field{Member: name, Location: ref.Location, Name: ref.LocationName, Shape: m.Shapes[ref.Shape]}
		if f.Name == "" {
			f.Name = name
		}
		for _, r := range in.Required {
			f.Required = f.Required || r == name
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OperationNames lists the operations, sorted.
func (m *Model) OperationNames() []string {
	var out []string
	for name := range m.Operations {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Load reads service's newest model from the botocore that python3
// imports.
func Load(service string) (*Model, error) {
	out, err := exec.Command("python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__))").Output()
	if err != nil {
		return nil, fmt.Errorf("find botocore with python3: %w", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "data", service, "*", "service-2.json*"))
	if len(files) == 0 {
		return nil, fmt.Errorf("botocore has no model of %s", service)
	}
	sort.Strings(files) // versions are dates: the newest last
	f, err := os.Open(files[len(files)-1])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(f.Name(), ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		r = zr
	}
	var m Model
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(m.Operations) == 0 {
		return nil, errors.New("model " + f.Name() + " has no operations")
	}
	return &m, nil
}

// Require loads service's model for a test: it skips the test when
// botocore is absent, and fails it instead under CI=true.
func Require(t testing.TB, service string) *Model {
	t.Helper()
	m, err := Load(service)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("AWS's %s model is required under CI=true: %v (botocore comes with the aws CLI)", service, err)
		}
		t.Skipf("AWS's %s model is not here (%v); install the aws CLI, which brings botocore", service, err)
	}
	return m
}

// Request builds the HTTP request the model describes for op against
// endpoint, path-style, on bucket and key: its URI, the query its URI
// fixes, and every required header and query field set to a sample
// value; set adds or overrides fields by the name they are sent under.
// The body is empty.
func (m *Model) Request(op, endpoint, bucket, key string, set map[string]string) (*http.Request, error) {
	o, ok := m.Operations[op]
	if !ok {
		return nil, fmt.Errorf("no operation %s", op)
	}
	uri := o.HTTP.RequestURI
	path, rawQuery, _ := strings.Cut(uri, "?")
	path = strings.ReplaceAll(path, "{Bucket}", bucket)
	path = strings.ReplaceAll(path, "{Key+}", key)
	q := url.Values{}
	for _, kv := range strings.Split(rawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		q.Set(k, v)
	}
	hdr := http.Header{}
	for _, f := range m.Fields(op) {
		v, ok := set[f.Name]
		if !ok && !f.Required {
			continue
		}
		if !ok {
			v = Sample(f, bucket, key)
		}
		switch f.Location {
		case "querystring":
			q.Set(f.Name, v)
		default:
			hdr.Set(f.Name, v)
		}
	}
	for name, v := range set {
		if hdr.Get(name) == "" && !q.Has(name) {
			hdr.Set(name, v)
		}
	}
	req, err := http.NewRequest(o.HTTP.Method, endpoint+path, nil)
	if err != nil {
		return nil, err
	}
	req.URL.RawQuery = strings.ReplaceAll(q.Encode(), "=&", "&")
	req.URL.RawQuery = strings.TrimSuffix(req.URL.RawQuery, "=")
	req.Header = hdr
	return req, nil
}

// Sample is a plausible value of a field: the names S3 needs to route a
// request (a copy source on bucket and key), else one of the shape's type.
func Sample(f Field, bucket, key string) string {
	switch f.Name {
	case "x-amz-copy-source":
		return bucket + "/" + key
	case "partNumber":
		return "1"
	case "x-amz-object-attributes":
		return "ETag"
	}
	switch {
	case len(f.Shape.Enum) > 0:
		return f.Shape.Enum[0]
	case f.Shape.Type == "integer" || f.Shape.Type == "long":
		return "1"
	case f.Shape.Type == "boolean":
		return "true"
	case f.Shape.Type == "timestamp":
		return time.Now().Add(24 * time.Hour).UTC().Format(http.TimeFormat)
	}
	return "x"
}
