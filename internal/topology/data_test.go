package topology

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDoDataOutlastsCallTimeout sends a call that takes longer than
// CallTimeout but keeps moving: DoData lets it finish where Do gives up.
func TestDoDataOutlastsCallTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("takes CallTimeout and more")
	}
	payload := bytes.Repeat([]byte("x"), 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
		// A slow answer: a piece every second, for longer than CallTimeout.
		for i := 0; i < int(CallTimeout/time.Second)+3; i++ {
			_, _ = w.Write(got[:1])
			w.(http.Flusher).Flush()
			time.Sleep(time.Second)
		}
	}))
	defer srv.Close()
	topo, err := New(Region{Name: "far-1", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(topo, "AKID", "secret", NewTransport(nil))
	resp, err := c.DoData(context.Background(), "far-1", http.MethodPut, "/x", payload)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(body) != int(CallTimeout/time.Second)+3 {
		t.Fatalf("slow but moving answer: %d bytes, %v", len(body), err)
	}
	resp, err = c.Do(context.Background(), "far-1", http.MethodPut, "/x", payload)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("Do outlasted CallTimeout")
	}
}
