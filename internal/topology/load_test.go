package topology

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := writeFile(t, `
regions:
  - name: us-west-2
    endpoint: http://127.0.0.1:9000
  - name: us-east-1
    endpoint: https://east.example.com:9443/
`)
	topo, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := topo.Names(); !slices.Equal(got, []string{"us-west-2", "us-east-1"}) {
		t.Fatalf("names %v", got)
	}
	if ep, ok := topo.Endpoint("us-east-1"); !ok || ep != "https://east.example.com:9443" {
		t.Fatalf("endpoint %q %v, want the trailing slash dropped", ep, ok)
	}
	if _, ok := topo.Endpoint("eu-west-1"); ok {
		t.Fatal("endpoint of a region not in the file")
	}
}

func TestLoadRefusesInvalidFiles(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no regions"},
		{"no regions", "regions: []\n", "no regions"},
		{"missing name", "regions:\n  - endpoint: http://127.0.0.1:9000\n", "region 1 has no name"},
		{"missing endpoint", "regions:\n  - name: us-east-1\n", `region "us-east-1": no endpoint`},
		{"duplicate", "regions:\n  - name: us-east-1\n    endpoint: http://a:1\n  - name: us-east-1\n    endpoint: http://b:1\n", `region "us-east-1" named twice`},
		{"not http", "regions:\n  - name: us-east-1\n    endpoint: ftp://a:1\n", "not an http:// or https:// URL"},
		{"no scheme", "regions:\n  - name: us-east-1\n    endpoint: 127.0.0.1:9000\n", "us-east-1"},
		{"path", "regions:\n  - name: us-east-1\n    endpoint: http://a:1/s3\n", "no path"},
		{"no host", "regions:\n  - name: us-east-1\n    endpoint: http://\n", "no host"},
		{"bad name", "regions:\n  - name: US East\n    endpoint: http://a:1\n", "lower-case letters"},
		{"typo", "regions:\n  - name: us-east-1\n    endpiont: http://a:1\n", "endpiont"},
		{"not yaml", "regions: [\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.text)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("loaded %q", tc.text)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q, want it to name the file and say %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("loaded a missing file")
	}
}

func TestListenAddress(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9001":     "127.0.0.1:9001",
		"http://east.example.com":   "east.example.com:80",
		"https://east.example.com":  "east.example.com:443",
		"http://[::1]:9000":         "[::1]:9000",
		"https://[2001:db8::1]":     "[2001:db8::1]:443",
		"http://0.0.0.0:9000":       "0.0.0.0:9000",
		"https://east.example.com/": "east.example.com:443",
	} {
		got, err := ListenAddress(in)
		if err != nil || got != want {
			t.Errorf("ListenAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
