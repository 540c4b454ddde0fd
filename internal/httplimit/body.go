package httplimit

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// handler reads every request body under the read idle timeout.
//
// The deadline is set on the connection before each read of the body and
// moved on as bytes arrive, rather than by a conn wrapper on every read:
// net/http also reads the connection on its own between and after
// requests (keep-alive waits, a background read that notices a client
// going away during a long download), and those reads must not time out.
// A total ReadTimeout would cut off long uploads that keep sending.
func (l *Limiter) handler(next http.Handler) http.Handler {
	if l.readIdle <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*conn)
		if c == nil || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &body{body: r.Body, c: c, idle: l.readIdle, l: l}
		// Until the handler reads, the deadline bounds what net/http
		// reads of the body itself: the rest of a body the handler did
		// not want, drained before the response.
		c.setReadDeadline(time.Now().Add(l.readIdle))
		// The handler gets a copy: net/http decides how to end the
		// request from the body it made (left unread: close without
		// draining, or drain a little), and must keep seeing it.
		r2 := *r
		r2.Body = b
		next.ServeHTTP(w, &r2)
		b.finish()
	})
}

// body is a request body read under the idle timeout. Its errors are
// sticky: ErrReadTimeout once the client stalled. The transport of a
// forwarded request reads it from a goroutine of its own, so it is safe
// for that.
type body struct {
	body io.ReadCloser
	c    *conn
	idle time.Duration
	l    *Limiter

	mu   sync.Mutex
	err  error
	eof  bool
	done bool // the handler returned
}

var errReadAfterHandler = errors.New("request body read after its handler returned")

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.err != nil:
		b.mu.Unlock()
		return 0, b.err
	case b.done:
		b.mu.Unlock()
		return 0, errReadAfterHandler
	case b.eof:
		b.mu.Unlock()
		return b.body.Read(p)
	}
	if err := b.c.armRead(b.idle); err != nil {
		b.err = b.timedOut()
		b.mu.Unlock()
		return 0, b.err
	}
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.c.readSince.Store(0)
	switch {
	case err == io.EOF:
		// The body is whole. net/http now reads on its own, to notice a
		// client that goes away: that read has no deadline.
		b.eof = true
		if !b.done {
			b.c.setReadDeadline(time.Time{})
		}
	case err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || b.c.isDisplaced()):
		// The deadline stays expired: net/http must not read the rest of
		// this body either, and closes the connection after the answer.
		b.err = b.timedOut()
		return n, b.err
	}
	return n, err
}

func (b *body) timedOut() error {
	b.l.m.timeouts.WithLabelValues("read").Inc()
	b.l.log.Debug("request body abandoned: the client sent nothing within the idle timeout", "client", b.c.key)
	return ErrReadTimeout
}

func (b *body) Close() error { return b.body.Close() }

// finish ends the handler's use of the body. A body left unread gets a
// fresh idle period for net/http to drain what it will of it.
func (b *body) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	b.c.readSince.Store(0)
	if !b.eof && b.err == nil {
		b.c.setReadDeadline(time.Now().Add(b.idle))
	}
}
