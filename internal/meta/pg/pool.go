package pg

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/meta"
)

// pool holds the store's connections: at most cap(sem) open, idle ones
// kept for reuse. A transaction holds one connection from BEGIN to COMMIT,
// which is all a pool has to do here; pgxpool's extra features (health
// checks of every idle connection, lifetimes) are not needed, and one
// connection that went bad is found by the ping below or by the
// transaction that uses it, which then fails and drops it.
type pool struct {
	cfg *pgx.ConnConfig
	sem chan struct{} // one token per open or opening connection

	mu     sync.Mutex
	idle   []idleConn
	closed bool
}

type idleConn struct {
	conn  *pgx.Conn
	since time.Time
}

// pingAfter is the idle time after which a connection is pinged before it
// is handed out, so a database restart costs no transaction.
const pingAfter = time.Second

func newPool(cfg *pgx.ConnConfig, size int) *pool {
	return &pool{cfg: cfg, sem: make(chan struct{}, size)}
}

// acquire returns an open connection, waiting for one to be free.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.sem
			return nil, meta.ErrClosed
		}
		var ic idleConn
		ok := len(p.idle) > 0
		if ok {
			ic = p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
		}
		p.mu.Unlock()
		if !ok {
			break
		}
		if time.Since(ic.since) < pingAfter || ic.conn.Ping(ctx) == nil {
			return ic.conn, nil
		}
		ic.conn.Close(context.Background())
		if err := ctx.Err(); err != nil {
			<-p.sem
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.sem
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("%w: connect to %s: %w", meta.ErrUnavailable, p.cfg.Host, err)
	}
	return conn, nil
}

// release gives conn back; a connection that is closed, or that the caller
// cannot vouch for (reusable false), is closed and forgotten.
func (p *pool) release(conn *pgx.Conn, reusable bool) {
	defer func() { <-p.sem }()
	if reusable && !conn.IsClosed() {
		p.mu.Lock()
		if !p.closed {
			p.idle = append(p.idle, idleConn{conn: conn, since: time.Now()})
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	conn.Close(context.Background())
}

// close closes the idle connections and makes acquire fail; connections
// in use are closed as they are released.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, ic := range idle {
		ic.conn.Close(context.Background())
	}
}
