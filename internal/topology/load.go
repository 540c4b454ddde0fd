package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// file is the topology file's schema:
//
//	regions:
//	  - name: us-west-2
//	    endpoint: http://127.0.0.1:9000
//	  - name: us-east-1
//	    endpoint: http://127.0.0.1:9001
//	audit:
//	  require: [region-outage, accidental-deletion]
//
// audit.require is what `bulwark audit` requires of every resource (the
// threats of package audit, which checks the names).
type file struct {
	Regions []Region `yaml:"regions"`
	Audit   struct {
		Require []string `yaml:"require"`
	} `yaml:"audit"`
}

// Load reads a topology file. Every region needs a name and an endpoint
// (an http or https base URL); unknown fields are refused, so that a typo
// does not silently drop a setting.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

func parse(data []byte) (*Topology, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(f.Regions) == 0 {
		return nil, errors.New("no regions: the file needs a \"regions:\" list")
	}
	seen := map[string]bool{}
	for i := range f.Regions {
		r := &f.Regions[i]
		r.Name = strings.TrimSpace(r.Name)
		if r.Name == "" {
			return nil, fmt.Errorf("region %d has no name", i+1)
		}
		if !validName(r.Name) {
			return nil, fmt.Errorf("region %q: a name is lower-case letters, digits and hyphens", r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("region %q named twice", r.Name)
		}
		seen[r.Name] = true
		ep, err := cleanEndpoint(r.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("region %q: %w", r.Name, err)
		}
		r.Endpoint = ep
	}
	t, err := New(f.Regions...)
	if err == nil && f.Audit.Require != nil {
		t.auditRequire = f.Audit.Require
	}
	return t, err
}

// validName accepts what AWS region names are made of; the name ends up in
// credential scopes and URLs.
func validName(s string) bool {
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// cleanEndpoint checks that s is a base URL peers can send S3 requests
// to, and drops a trailing slash.
func cleanEndpoint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("no endpoint")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("endpoint %q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q is not an http:// or https:// URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", fmt.Errorf("endpoint %q has no host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("endpoint %q must be a scheme and host[:port] only, with no path, query or user", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// ListenAddress returns the host:port a region's endpoint names, with the
// scheme's default port when it names none: where a region started from
// the topology file listens unless told otherwise.
func ListenAddress(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("endpoint %q is not a URL", endpoint)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return u.Host + ":" + port, nil
}
