package pg

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notifier carries wake-ups between the gateways of a region over
// PostgreSQL's LISTEN/NOTIFY: a commit on one gateway wakes the consumer of
// the change feed on another at once instead of at its next poll.
//
// A notification carries no data and may be lost (the listening connection
// drops, a gateway restarts): it only says "look again". Whenever the
// listening connection is (re)established every subscriber is woken, since
// notifications sent while it was down are gone, and consumers keep a
// periodic poll besides, so a lost notification costs latency, never work.
type Notifier struct {
	store *Store
	log   *slog.Logger

	mu   sync.Mutex
	subs map[string][]chan struct{} // channel → subscribers

	cancel context.CancelFunc
	done   chan struct{}
}

// NewNotifier returns a notifier over the store's database; Subscribe to
// the channels wanted, then Start.
func (s *Store) NewNotifier(log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{store: s, log: log, subs: map[string][]chan struct{}{}}
}

// Subscribe returns a channel that receives a value (coalesced: at most one
// waiting) whenever channel is notified. It is called before Start.
func (n *Notifier) Subscribe(channel string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := make(chan struct{}, 1)
	n.subs[channel] = append(n.subs[channel], c)
	return c
}

// Notify sends a notification on channel to every gateway listening,
// this one included.
func (n *Notifier) Notify(ctx context.Context, channel string) error {
	if err := n.store.enter(); err != nil {
		return err
	}
	defer n.store.inflight.Done()
	conn, err := n.store.pool.acquire(ctx)
	if err != nil {
		return fmt.Errorf("notify %q: %w", channel, err)
	}
	_, err = conn.Exec(ctx, "SELECT pg_notify($1, '')", channel)
	n.store.pool.release(conn, err == nil)
	if err != nil {
		return fmt.Errorf("notify %q: %w", channel, err)
	}
	return nil
}

// Start listens in a goroutine of its own until Close.
func (n *Notifier) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		n.run(ctx)
	}()
}

// Close stops listening.
func (n *Notifier) Close(ctx context.Context) error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// listenRetry is the pause before the listening connection is opened again.
const listenRetry = time.Second

func (n *Notifier) run(ctx context.Context) {
	for {
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("listen for notifications; polling until reconnected", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

// listen opens a connection of its own (a listening session cannot go back
// to the pool), listens on every subscribed channel and delivers
// notifications until the connection fails or ctx ends.
func (n *Notifier) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, n.store.pool.cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	n.mu.Lock()
	var channels []string
	for ch := range n.subs {
		channels = append(channels, ch)
	}
	n.mu.Unlock()
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	// What was sent while no connection listened is lost: look again.
	for _, ch := range channels {
		n.wake(ch)
	}
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.wake(note.Channel)
	}
}

func (n *Notifier) wake(channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.subs[channel] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
