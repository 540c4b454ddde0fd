// Package httplimit bounds what HTTP clients can hold of a server: how long
// a connection may make no progress, and how many connections may be open,
// from one client and from all of them.
//
// Idle timeouts measure progress, never totals: a request body must deliver
// a byte, and a response must be taken a byte, within every idle period,
// however long the whole transfer lasts. Headers get the read idle period
// in total (http.Server.ReadHeaderTimeout): a header block is at most
// 64 KiB and every real client sends it at once.
//
// The caps count every open connection. At a cap, a new connection does not
// simply bounce: it displaces the connection that has kept the server
// waiting longest (idle between requests, stalled in its headers or body,
// or not reading its response), and is refused only when every connection
// in the way is being served. A client, or a peer region behind the same
// address, is therefore never locked out by connections that do nothing,
// whoever holds them.
package httplimit

import (
	"context"
	"crypto/tls"
	"errors"
	"iter"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults. S3 answers RequestTimeout to a request body that stalls for
// about 20 seconds; clients written against S3 therefore never pause that
// long while sending, so Bulwark uses the same. A reader pauses for its own
// reasons (a consumer that writes to a slow disk, a paused stream), and a
// connection waiting on one costs only a goroutine and a socket buffer, so
// responses get longer. The caps leave a single address a quarter of the
// server: far more than a client or a peer region uses (the aws CLI opens
// 10 connections, a peer region one per forwarded request and 16 per
// replicated bucket), and 4,096 stalled connections hold about 60 MiB of
// the server's memory (measured over plain HTTP; TLS adds its buffers).
const (
	DefaultReadIdle          = 20 * time.Second
	DefaultWriteIdle         = 60 * time.Second
	DefaultMaxConns          = 4096
	DefaultMaxConnsPerClient = 1024
)

// ErrReadTimeout is what reading a request body returns once the client
// has sent nothing for the read idle period. The wire packages answer it
// with their RequestTimeout; the connection is closed after the answer.
var ErrReadTimeout = errors.New("the client sent nothing within the idle timeout")

// Config configures a Limiter. Zero values take the defaults; a negative
// timeout or cap turns it off.
type Config struct {
	ReadIdle          time.Duration
	WriteIdle         time.Duration
	MaxConns          int
	MaxConnsPerClient int
	// Registry, when set, takes the limiter's metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Limiter applies the limits to one http.Server: its listener goes through
// Listener, and Configure hooks it into the server.
type Limiter struct {
	readIdle, writeIdle         time.Duration
	maxConns, maxConnsPerClient int
	log                         *slog.Logger
	m                           *metrics
	mu                          sync.Mutex
	open                        int
	clients                     map[netip.Addr]map[*conn]struct{}
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	l := &Limiter{
		readIdle:          orDefault(cfg.ReadIdle, DefaultReadIdle),
		writeIdle:         orDefault(cfg.WriteIdle, DefaultWriteIdle),
		maxConns:          orDefault(cfg.MaxConns, DefaultMaxConns),
		maxConnsPerClient: orDefault(cfg.MaxConnsPerClient, DefaultMaxConnsPerClient),
		log:               cfg.Logger,
		clients:           map[netip.Addr]map[*conn]struct{}{},
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.m = newMetrics(cfg.Registry, l)
	return l
}

func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Configure makes srv cooperate with the limiter: headers get the read
// idle period, request bodies are read under it, and connection states
// tell the limiter which connections are waiting on their client. srv must
// serve a listener returned by Listener.
func (l *Limiter) Configure(srv *http.Server) {
	if l.readIdle > 0 {
		srv.ReadHeaderTimeout = l.readIdle
	}
	srv.Handler = l.handler(srv.Handler)
	prevState := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if lc := ours(c); lc != nil {
			lc.setState(s)
		}
		if prevState != nil {
			prevState(c, s)
		}
	}
	prevCtx := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevCtx != nil {
			ctx = prevCtx(ctx, c)
		}
		if lc := ours(c); lc != nil {
			ctx = context.WithValue(ctx, connKey{}, lc)
		}
		return ctx
	}
}

type connKey struct{}

// ours finds the limiter's connection under what the server sees (TLS
// wraps it).
func ours(c net.Conn) *conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*conn)
	return lc
}

// Listener returns ln with every connection it accepts counted against the
// caps and its writes under the write idle timeout. It must sit below TLS,
// so that the timeouts see the bytes on the wire and TLS never sees a
// write that timed out while still making progress.
func (l *Limiter) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection within the caps. A connection over a
// cap that displaces none is closed at once, before anything is read from
// it: it has no request yet to answer, and reading one (a TLS handshake,
// headers) is the very cost the cap bounds. Clients retry a refused
// connection as they retry any connection error.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		raw, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, victims := ln.l.admit(raw)
		for _, v := range victims {
			v.displace()
		}
		if c != nil {
			return c, nil
		}
		_ = raw.Close()
	}
}

// clientKey is the address a client is counted by: its IPv4 address, or
// the /64 of its IPv6 address, which one host gets whole.
func clientKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr().Unmap()
	}
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// admit counts raw in, displacing the longest-waiting connection of its
// client, or of the server, where a cap is reached. It returns nil when raw
// is refused, and the connections to displace (already uncounted).
func (l *Limiter) admit(raw net.Conn) (*conn, []*conn) {
	key := clientKey(raw.RemoteAddr())
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var victims []*conn
	if own := l.clients[key]; l.maxConnsPerClient > 0 && len(own) >= l.maxConnsPerClient {
		v := l.makeRoomLocked(maps.Keys(own), "client", key)
		if v == nil {
			return nil, nil
		}
		victims = append(victims, v)
	}
	if l.maxConns > 0 && l.open >= l.maxConns {
		v := l.makeRoomLocked(l.allLocked, "server", key)
		if v == nil {
			return nil, victims
		}
		victims = append(victims, v)
	}
	c := &conn{Conn: raw, l: l, key: key}
	c.state.Store(int32(http.StateNew))
	c.idleSince.Store(now.UnixNano())
	own := l.clients[key]
	if own == nil {
		own = map[*conn]struct{}{}
		l.clients[key] = own
	}
	own[c] = struct{}{}
	l.open++
	return c, victims
}

// makeRoomLocked uncounts the connection of candidates that has waited on
// its client longest, and returns it. With none waiting, every one is
// being served: it counts a refusal at limit and returns nil.
func (l *Limiter) makeRoomLocked(candidates iter.Seq[*conn], limit string, client netip.Addr) *conn {
	var v *conn
	var since int64
	for c := range candidates {
		if s := c.waitingSince(); s != 0 && (v == nil || s < since) {
			v, since = c, s
		}
	}
	if v == nil {
		l.m.refused.WithLabelValues(limit).Inc()
		l.log.Debug("connection refused: at the cap, every connection is being served", "client", client, "limit", limit)
		return nil
	}
	l.removeLocked(v)
	return v
}

// allLocked yields every counted connection.
func (l *Limiter) allLocked(yield func(*conn) bool) {
	for _, own := range l.clients {
		for c := range own {
			if !yield(c) {
				return
			}
		}
	}
}

func (l *Limiter) removeLocked(c *conn) {
	if c.released {
		return
	}
	c.released = true
	own := l.clients[c.key]
	delete(own, c)
	if len(own) == 0 {
		delete(l.clients, c.key)
	}
	l.open--
}

func (l *Limiter) release(c *conn) {
	l.mu.Lock()
	l.removeLocked(c)
	l.mu.Unlock()
}

// Open is the number of connections counted against the caps.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

type metrics struct {
	refused   *prometheus.CounterVec
	displaced prometheus.Counter
	timeouts  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, l *Limiter) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_connections_refused_total",
			Help: "Connections closed on arrival, by the cap they met (client or server).",
		}, []string{"limit"}),
		displaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_http_connections_displaced_total",
			Help: "Connections closed to make room at a cap, having waited longest on their client.",
		}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_http_idle_timeouts_total",
			Help: "Requests ended because the client made no progress for the idle timeout, by direction (read: its body; write: its response).",
		}, []string{"direction"}),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.displaced, m.timeouts,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_http_connections_open",
				Help: "Open client connections, as counted against the connection caps.",
			}, func() float64 { return float64(l.Open()) }))
	}
	return m
}
