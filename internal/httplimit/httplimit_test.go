package httplimit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The timeouts of these tests: short, so that waiting for one is quick,
// and the bounds generous, so that a loaded machine does not fail them.
const (
	idle  = time.Second
	bound = 15 * time.Second
)

// start serves h on loopback under the limits of cfg. wrap, when set,
// wraps the listener below the limiter's.
func start(t *testing.T, cfg Config, h http.Handler, wrap func(net.Listener) net.Listener) (string, *Limiter) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	l := New(cfg)
	srv := &http.Server{Handler: h}
	l.Configure(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l.Listener(ln))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String(), l
}

// dial opens a raw connection; it is closed at the end of the test.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// response reads one response from c, within bound.
func response(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(bound))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return res, string(b)
}

// closedBy reports whether the server closes c within d: a read sees EOF
// or a reset rather than its own deadline.
func closedBy(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// echoLength reads the whole body and answers its length, or 400 with the
// error when the body failed.
func echoLength() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			code := "Other"
			if errors.Is(err, ErrReadTimeout) {
				code = "RequestTimeout"
			}
			http.Error(w, code, http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, len(b))
	})
}

func TestStalledBody(t *testing.T) {
	addr, _ := start(t, Config{ReadIdle: idle}, echoLength(), nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	began := time.Now()
	send(t, c, "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\n\r\n"+strings.Repeat("a", 1000))
	res, body := response(t, c, br)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "RequestTimeout") {
		t.Fatalf("got %d %q, want 400 RequestTimeout", res.StatusCode, body)
	}
	if waited := time.Since(began); waited < idle {
		t.Fatalf("answered after %v, before the idle timeout", waited)
	}
	if !res.Close {
		t.Error("the answer does not close the connection")
	}
	if !closedBy(c, br, bound) {
		t.Error("the connection stays open")
	}
}

func TestSlowBodyCompletes(t *testing.T) {
	addr, _ := start(t, Config{ReadIdle: idle}, echoLength(), nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	const pieces, size = 12, 100
	send(t, c, fmt.Sprintf("PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", pieces*size))
	for range pieces {
		time.Sleep(idle * 3 / 10)
		send(t, c, strings.Repeat("b", size))
	}
	res, body := response(t, c, br)
	if res.StatusCode != http.StatusOK || body != fmt.Sprint(pieces*size) {
		t.Fatalf("got %d %q, want 200 %d", res.StatusCode, body, pieces*size)
	}
	// Chunked bodies too, and the connection stays usable.
	send(t, c, "PUT /k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	for range 3 {
		time.Sleep(idle / 2)
		send(t, c, "3\r\nabc\r\n")
	}
	send(t, c, "0\r\n\r\n")
	if res, body := response(t, c, br); res.StatusCode != http.StatusOK || body != "9" {
		t.Fatalf("chunked: got %d %q, want 200 9", res.StatusCode, body)
	}
}

func TestStalledHeaders(t *testing.T) {
	addr, _ := start(t, Config{ReadIdle: idle}, echoLength(), nil)
	c := dial(t, addr)
	send(t, c, "PUT /k HTTP/1.1\r\nHost: x\r\n")
	if !closedBy(c, bufio.NewReader(c), bound) {
		t.Fatal("a connection stalled in its headers stays open")
	}
}

// A handler that answers without reading the body must not wait on a
// client that sends none: net/http's drain of the body is bounded too.
func TestUnreadBodyOfStalledClient(t *testing.T) {
	addr, _ := start(t, Config{ReadIdle: idle}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused", http.StatusForbidden)
	}), nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	send(t, c, "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\n\r\n")
	if res, _ := response(t, c, br); res.StatusCode != http.StatusForbidden {
		t.Fatalf("got %d, want 403", res.StatusCode)
	}
	if !closedBy(c, br, bound) {
		t.Error("the connection stays open")
	}
}

// smallBuffers makes the server's socket send buffers small, so that a
// client that reads slowly holds up the server's writes at once.
func smallBuffers(ln net.Listener) net.Listener { return smallBufferListener{ln} }

type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// dialSmall dials with a small receive buffer.
func dialSmall(t *testing.T, addr string) *net.TCPConn {
	c := dial(t, addr)
	_ = c.SetReadBuffer(8 << 10)
	return c
}

func TestStalledReaderLetGo(t *testing.T) {
	result := make(chan error, 1)
	addr, _ := start(t, Config{WriteIdle: idle}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(16<<20))
		_, err := w.Write(make([]byte, 16<<20))
		result <- err
	}), smallBuffers)
	c := dial(t, addr)
	began := time.Now()
	send(t, c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("the response was written to a client that reads nothing")
		}
		if waited := time.Since(began); waited < idle {
			t.Fatalf("gave up after %v, before the idle timeout", waited)
		}
	case <-time.After(bound):
		t.Fatal("the handler is still writing to a client that reads nothing")
	}
	n, _ := io.Copy(io.Discard, c)
	if n >= 16<<20 {
		t.Fatalf("the client got the whole response (%d bytes)", n)
	}
}

// A client that reads slowly but steadily gets the whole response, however
// long it takes in all, from memory or from a file (sendfile).
func TestSlowReaderGetsEverything(t *testing.T) {
	const size = 128 << 10
	data := make([]byte, size)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "object")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The reader reads every idle/5; the limit is five times idle, so
	// that a loaded machine stalling the reader for a second does not
	// make it look idle.
	addr, _ := start(t, Config{WriteIdle: 5 * idle}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		if r.URL.Path == "/memory" {
			_, _ = w.Write(data)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		// Past the first bytes, as a ranged GET seeks.
		_, _ = f.Seek(100, io.SeekStart)
		_, _ = w.Write(data[:100])
		_, _ = io.Copy(w, io.LimitReader(f, size-100))
	}), smallBuffers)
	for _, path := range []string{"/memory", "/file"} {
		t.Run(path[1:], func(t *testing.T) {
			t.Parallel()
			c := dialSmall(t, addr)
			send(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(bound * 2))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			var got bytes.Buffer
			buf := make([]byte, 16<<10)
			for {
				time.Sleep(idle / 5)
				n, err := io.ReadFull(res.Body, buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("got %d bytes, not the %d sent", got.Len(), size)
			}
			t.Logf("read in %v", time.Since(began))
		})
	}
}

// waitOpen waits until the limiter counts n connections.
func waitOpen(t *testing.T, l *Limiter, n int) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for l.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", l.Open(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCapDisplacesLongestWaiting(t *testing.T) {
	addr, l := start(t, Config{ReadIdle: time.Minute, MaxConnsPerClient: 3}, echoLength(), nil)
	// The oldest waits for its next request after one answered.
	idleConn := dial(t, addr)
	idleBR := bufio.NewReader(idleConn)
	send(t, idleConn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	response(t, idleConn, idleBR)
	time.Sleep(20 * time.Millisecond)
	// The next is stalled in its body, the last in its headers.
	bodyConn := dial(t, addr)
	bodyBR := bufio.NewReader(bodyConn)
	send(t, bodyConn, "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	time.Sleep(20 * time.Millisecond)
	headConn := dial(t, addr)
	send(t, headConn, "GET / HTTP/1.1\r\n")
	waitOpen(t, l, 3)

	// Each new client displaces the one waiting longest and is served;
	// it stays, idle, waiting less long than those left.
	for i, victim := range []string{"idle", "body", "headers"} {
		c := dial(t, addr)
		br := bufio.NewReader(c)
		send(t, c, "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
		if res, body := response(t, c, br); res.StatusCode != http.StatusOK || body != "2" {
			t.Fatalf("new client %d: got %d %q", i, res.StatusCode, body)
		}
		switch victim {
		case "idle":
			if !closedBy(idleConn, idleBR, bound) {
				t.Fatal("the idle connection was not displaced")
			}
			if closedBy(bodyConn, bodyBR, 100*time.Millisecond) {
				t.Fatal("a connection that waited less was displaced first")
			}
		case "body":
			// Stalled in its body, it is answered as timed out.
			res, body := response(t, bodyConn, bodyBR)
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "RequestTimeout") {
				t.Fatalf("displaced body: got %d %q", res.StatusCode, body)
			}
		case "headers":
			if !closedBy(headConn, bufio.NewReader(headConn), bound) {
				t.Fatal("the connection stalled in its headers was not displaced")
			}
		}
	}
}

// With every connection being served, none can be displaced: a new one is
// closed unanswered, and counted.
func TestCapRefusesWhenAllBusy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		limit string
	}{
		{"client", Config{MaxConnsPerClient: 2}, "client"},
		{"server", Config{MaxConns: 2, MaxConnsPerClient: -1}, "server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var entered sync.WaitGroup
			entered.Add(2)
			addr, l := start(t, tc.cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				entered.Done()
				<-release
				fmt.Fprint(w, "done")
			}), nil)
			var busy []*bufio.Reader
			var conns []net.Conn
			for range 2 {
				c := dial(t, addr)
				send(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				conns = append(conns, c)
				busy = append(busy, bufio.NewReader(c))
			}
			entered.Wait()
			c := dial(t, addr)
			send(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if !closedBy(c, bufio.NewReader(c), bound) {
				t.Fatal("a connection over the cap was served")
			}
			close(release)
			for i, br := range busy {
				if res, body := response(t, conns[i], br); res.StatusCode != 200 || body != "done" {
					t.Fatalf("busy client %d: got %d %q", i, res.StatusCode, body)
				}
			}
			if n := testutil.ToFloat64(l.m.refused.WithLabelValues(tc.limit)); n != 1 {
				t.Fatalf("%v refusals counted for the %s cap, want 1", n, tc.limit)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:443":              "192.0.2.7",
		"[::ffff:192.0.2.7]:443":     "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::",
		"[2001:db8:1:2:ff::1]:80":    "2001:db8:1:2::",
		"[2001:db8:1:3::1]:80":       "2001:db8:1:3::",
		"[::1]:9000":                 "::",
		"127.0.0.1:9000":             "127.0.0.1",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientKey(a); got != netip.MustParseAddr(want) {
			t.Errorf("clientKey(%s) = %s, want %s", addr, got, want)
		}
	}
}
