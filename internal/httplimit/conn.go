package httplimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a counted connection. It owns the write deadline, which it moves
// forward on every write that makes progress, and records what the server
// is waiting on the client for, so that a cap can displace the connection
// that has waited longest.
type conn struct {
	net.Conn
	l   *Limiter
	key netip.Addr

	// state is the http.ConnState the server last reported; idleSince is
	// when it became new or idle. readSince and writeSince are when a
	// request body read, or a write, began waiting on the client (0: none
	// waiting). All are Unix nanoseconds.
	state      atomic.Int32
	idleSince  atomic.Int64
	readSince  atomic.Int64
	writeSince atomic.Int64

	mu sync.Mutex
	// writeDeadline is the one set from outside (TLS sets one to send its
	// close_notify), which the idle deadline never extends.
	writeDeadline time.Time
	displaced     bool

	released bool // guarded by l.mu
}

// aLongTimeAgo expires a deadline at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) setState(s http.ConnState) {
	if s == http.StateIdle {
		c.idleSince.Store(time.Now().UnixNano())
	}
	c.state.Store(int32(s))
}

// waitingSince is since when the server has been waiting on the client (0:
// it is not): for the next request, or for the body or the reading of the
// one in progress.
func (c *conn) waitingSince() int64 {
	var since int64
	if s := http.ConnState(c.state.Load()); s == http.StateNew || s == http.StateIdle {
		since = c.idleSince.Load()
	}
	for _, t := range []int64{c.readSince.Load(), c.writeSince.Load()} {
		if t != 0 && (since == 0 || t < since) {
			since = t
		}
	}
	return since
}

// displace ends a connection a cap has made room from. One stalled in a
// request body has its read deadline expired, so that the request is
// answered RequestTimeout like any idle one; any other is closed.
func (c *conn) displace() {
	c.l.m.displaced.Inc()
	c.l.log.Debug("connection displaced: it waited longest at a connection cap", "client", c.key)
	c.mu.Lock()
	c.displaced = true
	reading := c.readSince.Load() != 0
	if reading {
		_ = c.Conn.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
	if !reading {
		_ = c.Conn.Close()
	}
}

func (c *conn) isDisplaced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.displaced
}

func (c *conn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// CloseWrite passes net/http's half-close through: after an answer to a
// client still sending, it sends FIN and waits a little before closing,
// so that the client reads the answer before any reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// armRead starts a wait for the request body: the read fails unless a byte
// arrives within the idle period.
func (c *conn) armRead(idle time.Duration) error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.displaced {
		return ErrReadTimeout
	}
	c.readSince.Store(now.UnixNano())
	return c.Conn.SetReadDeadline(now.Add(idle))
}

// setReadDeadline sets the read deadline unless the connection was
// displaced, whose deadline stays expired.
func (c *conn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.displaced {
		_ = c.Conn.SetReadDeadline(t)
	}
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// armWrite starts a write: it fails unless the client takes a byte within
// the idle period (or by the deadline set from outside, if sooner).
func (c *conn) armWrite() {
	now := time.Now()
	c.writeSince.Store(now.UnixNano())
	d := now.Add(c.l.writeIdle)
	c.mu.Lock()
	if !c.writeDeadline.IsZero() && c.writeDeadline.Before(d) {
		d = c.writeDeadline
	}
	_ = c.Conn.SetWriteDeadline(d)
	c.mu.Unlock()
}

// progressed reports whether a write that failed after n bytes only ran
// out of its idle period while the client was still taking bytes, and may
// go on: a deadline set from outside, or displacement, ends it.
func (c *conn) progressed(n int64, err error) bool {
	if n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.displaced && (c.writeDeadline.IsZero() || time.Now().Before(c.writeDeadline))
}

func (c *conn) endWrite(err error) {
	c.writeSince.Store(0)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.l.m.timeouts.WithLabelValues("write").Inc()
		c.l.log.Debug("response abandoned: the client read nothing within the idle timeout", "client", c.key)
	}
}

// Write writes p, failing only when the client takes nothing for the
// write idle period. A single large write to a slow client may take far
// longer in total, which is not a stall.
func (c *conn) Write(p []byte) (int, error) {
	if c.l.writeIdle <= 0 {
		return c.Conn.Write(p)
	}
	done := 0
	for {
		c.armWrite()
		n, err := c.Conn.Write(p[done:])
		done += n
		if err != nil && c.progressed(int64(n), err) {
			continue
		}
		c.endWrite(err)
		return done, err
	}
}

// ReadFrom keeps the kernel's sendfile path of the TCP connection below
// (net/http uses it for io.Copy from a file), under the same idle rule as
// Write. Other sources go through Write.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	f, lr := fileSource(r)
	if !ok || f == nil || c.l.writeIdle <= 0 {
		if ok && c.l.writeIdle <= 0 {
			return rf.ReadFrom(r)
		}
		return io.Copy(writerOnly{c}, r)
	}
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return io.Copy(writerOnly{c}, r)
	}
	var limit int64
	if lr != nil {
		limit = lr.N
	}
	var total int64
	for {
		c.armWrite()
		n, err := rf.ReadFrom(r)
		total += n
		if err != nil && c.progressed(n, err) {
			// Continue from the byte the client has: a fallback copy
			// may have read further from the file than it wrote.
			if _, serr := f.Seek(start+total, io.SeekStart); serr != nil {
				c.endWrite(nil)
				return total, serr
			}
			if lr != nil {
				lr.N = limit - total
			}
			continue
		}
		c.endWrite(err)
		return total, err
	}
}

// fileSource finds the file under r when r is one or a LimitedReader of
// one: the sources sendfile takes.
func fileSource(r io.Reader) (*os.File, *io.LimitedReader) {
	lr, _ := r.(*io.LimitedReader)
	if lr != nil {
		r = lr.R
	}
	f, _ := r.(*os.File)
	return f, lr
}

// writerOnly hides ReadFrom, so that io.Copy goes through Write.
type writerOnly struct{ io.Writer }
