package topology

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/sigv4"
)

func TestClientSignsForThePeersRegion(t *testing.T) {
	v := &sigv4.Verifier{
		Regions: []string{"us-east-1"},
		Lookup: func(_ context.Context, ak string) (sigv4.Credential, error) {
			if ak != "AKIAPEER" {
				return sigv4.Credential{}, sigv4.ErrInvalidAccessKeyID
			}
			return sigv4.Credential{AccessKey: ak, Secret: "peer-secret"}, nil
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := v.Verify(r.Context(), r)
		if err == nil && res.Anonymous {
			err = errors.New("anonymous")
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(res.Body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		_, _ = w.Write(append([]byte(r.URL.Path+" "), body...))
	}))
	defer srv.Close()
	topo, _ := New(Region{Name: "us-east-1", Endpoint: srv.URL})
	c := NewClient(topo, "AKIAPEER", "peer-secret", NewTransport(nil))
	resp, err := c.Do(context.Background(), "us-east-1", http.MethodPost, "/_bulwark/v1/x", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != `/_bulwark/v1/x {"a":1}` {
		t.Fatalf("%s: %s", resp.Status, got)
	}
	// A wrong secret is refused by the peer: an answer, not an outage.
	bad := NewClient(topo, "AKIAPEER", "wrong", NewTransport(nil))
	resp, err = bad.Do(context.Background(), "us-east-1", http.MethodGet, "/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong secret: %s", resp.Status)
	}
}

func TestClientReportsADeadRegion(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	topo, _ := New(Region{Name: "us-east-1", Endpoint: dead}, Region{Name: "eu-west-1"})
	c := NewClient(topo, "AKIAPEER", "peer-secret", NewTransport(nil))
	start := time.Now()
	_, err = c.Do(context.Background(), "us-east-1", http.MethodGet, "/x", nil)
	if !errors.Is(err, ErrRegionUnreachable) || !strings.Contains(err.Error(), "us-east-1") {
		t.Fatalf("dead region: %v", err)
	}
	if time.Since(start) > 2*DialTimeout {
		t.Fatalf("took %v to give up", time.Since(start))
	}
	if _, err := c.Do(context.Background(), "eu-west-1", http.MethodGet, "/x", nil); !errors.Is(err, ErrRegionUnreachable) || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("region without endpoint: %v", err)
	}
}
