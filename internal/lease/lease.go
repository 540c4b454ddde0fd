// Package lease gives each item of a region's background work (the
// replication engine, the backup scheduler, the sweepers...) to exactly one
// live gateway at a time, through records in the region's metadata store,
// and hands it to another gateway within seconds when its holder dies.
//
// A lease is a record in the store: its holder, the holder's address, an
// epoch that grows each time the lease changes hands (a fencing token) and
// a renewal counter. The holder renews it every Renew (TTL/5 by default).
// Expiry is judged by the observer's own monotonic clock, never by a
// timestamp written by another machine: a gateway that finds a record
// unchanged (same holder, epoch and counter) through a whole TTL of its
// own observation takes the lease. The holder, for its part, stops its
// work once TTL has passed since the start of its last confirmed renewal,
// which is before any observer can have seen a full TTL of silence (the
// observer's TTL starts after the renewal committed). So two gateways never
// work on one item at once as long as their clocks run at the same rate,
// whatever their wall clocks say; transactions that must not be done twice
// can also check the epoch (Check) inside their own Update, which fences a
// holder that was paused past its TTL.
//
// A gateway's presence is a lease of its own (Presence), renewed like any
// other: Live reports which gateways hold theirs, so that work a dead
// gateway left running (a backup job in flight) can be failed or taken
// over by a live one.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// space is the keyspace of the lease records: name → Record.
const space = "leases"

// presencePrefix starts the names of the gateways' presence leases.
const presencePrefix = "gateway/"

// Defaults of Config.
const (
	DefaultTTL = 6 * time.Second
)

// ErrLost is returned by Check when the lease has changed hands.
var ErrLost = errors.New("lease lost")

// Record is a lease as stored.
type Record struct {
	Holder string
	// Addr is where the holder serves (its endpoint URL), for requests
	// that only the holder can answer.
	Addr string `json:",omitempty"`
	// Epoch grows each time the lease changes hands.
	Epoch uint64
	// Renewals counts the holder's renewals: a record whose counter stops
	// moving for a TTL belongs to a dead holder.
	Renewals uint64
}

// Config configures a gateway's leases.
type Config struct {
	Meta meta.Store
	// Holder names this gateway; random when empty.
	Holder string
	// Addr is this gateway's endpoint, kept in the records it holds.
	Addr string
	// TTL is how long a lease outlives its holder's last renewal
	// (DefaultTTL when 0); Renew the time between renewals and between
	// looks at a lease held by another (TTL/5 when 0).
	TTL, Renew time.Duration
	Logger     *slog.Logger
}

// Leases are the leases of one gateway.
type Leases struct {
	meta   meta.Store
	holder string
	addr   string
	ttl    time.Duration
	renew  time.Duration
	log    *slog.Logger

	mu       sync.Mutex
	observed map[string]observation // what Live has seen of each presence
}

// observation is a record as an observer first saw it unchanged.
type observation struct {
	rec   Record
	since time.Time // monotonic
}

// New returns the leases of a gateway.
func New(cfg Config) *Leases {
	l := &Leases{meta: cfg.Meta, holder: cfg.Holder, addr: cfg.Addr, ttl: cfg.TTL, renew: cfg.Renew, log: cfg.Logger,
		observed: map[string]observation{}}
	if l.holder == "" {
		l.holder = NewHolderID()
	}
	if l.ttl <= 0 {
		l.ttl = DefaultTTL
	}
	if l.renew <= 0 {
		l.renew = l.ttl / 5
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// NewHolderID returns a random gateway name.
func NewHolderID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Holder is this gateway's name.
func (l *Leases) Holder() string { return l.holder }

// SetAddr sets the address kept in the records this gateway takes from now
// on (its endpoint, known once it listens).
func (l *Leases) SetAddr(addr string) {
	l.mu.Lock()
	l.addr = addr
	l.mu.Unlock()
}

func (l *Leases) address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

// TTL is the leases' time to live: the longest a dead holder's work waits
// for another gateway, plus one Renew.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Get returns the record of a lease; false when nobody holds it.
func (l *Leases) Get(ctx context.Context, name string) (Record, bool, error) {
	var rec Record
	var found bool
	err := l.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		rec, found, err = get(tx, name)
		return err
	})
	return rec, found, err
}

func get(tx meta.Tx, name string) (Record, bool, error) {
	var rec Record
	v := tx.Get(space, []byte(name))
	if v == nil {
		return rec, false, tx.Err()
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("decode lease %q: %w", name, err)
	}
	return rec, true, nil
}

func put(tx meta.Tx, name string, rec Record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Put(space, []byte(name), v)
}

// Check fails with ErrLost unless holder holds the lease name at epoch:
// called inside an Update, it keeps a holder that lost its lease without
// knowing (paused past its TTL) from committing work that is no longer
// its own.
func Check(tx meta.Tx, name, holder string, epoch uint64) error {
	rec, found, err := get(tx, name)
	if err != nil {
		return err
	}
	if !found || rec.Holder != holder || rec.Epoch != epoch {
		return fmt.Errorf("lease %q: %w", name, ErrLost)
	}
	return nil
}

// tryAcquire takes the lease when it is free, held by this gateway, or
// seen unchanged for a TTL (obs, updated here, is what this gateway has
// seen of it); it returns the epoch taken, 0 when another holds it.
func (l *Leases) tryAcquire(ctx context.Context, name string, obs *observation, now time.Time) (uint64, error) {
	var epoch uint64
	var seen Record
	var found bool
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		epoch = 0
		rec, ok, err := get(tx, name)
		if err != nil {
			return err
		}
		seen, found = rec, ok
		if ok && rec.Holder != "" && rec.Holder != l.holder && !(obs.rec == rec && now.Sub(obs.since) >= l.ttl) {
			return nil
		}
		next := Record{Holder: l.holder, Addr: l.address(), Epoch: rec.Epoch + 1, Renewals: rec.Renewals + 1}
		if err := put(tx, name, next); err != nil {
			return err
		}
		epoch = next.Epoch
		return nil
	})
	if err != nil {
		return 0, err
	}
	if epoch == 0 && found && obs.rec != seen {
		*obs = observation{rec: seen, since: now}
	}
	return epoch, nil
}

// renew moves the lease's renewal counter; false means it changed hands.
func (l *Leases) renewLease(ctx context.Context, name string, epoch uint64) (bool, error) {
	held := false
	err := l.meta.Update(ctx, func(tx meta.Tx) error {
		held = false
		rec, ok, err := get(tx, name)
		if err != nil || !ok || rec.Holder != l.holder || rec.Epoch != epoch {
			return err
		}
		held = true
		rec.Renewals++
		rec.Addr = l.address()
		return put(tx, name, rec)
	})
	return held, err
}

// release frees the lease when this gateway holds it at epoch, so that
// another takes it at its next look rather than after a TTL. The record
// stays, with no holder, so that epochs keep growing; a presence lease,
// whose name no other gateway will take, is deleted.
func (l *Leases) release(ctx context.Context, name string, epoch uint64) error {
	return l.meta.Update(ctx, func(tx meta.Tx) error {
		rec, ok, err := get(tx, name)
		if err != nil || !ok || rec.Holder != l.holder || rec.Epoch != epoch {
			return err
		}
		if strings.HasPrefix(name, presencePrefix) {
			return tx.Delete(space, []byte(name))
		}
		return put(tx, name, Record{Epoch: rec.Epoch, Renewals: rec.Renewals + 1})
	})
}

// Live returns the gateways whose presence lease is alive: its record
// moved within the last TTL of this gateway's observation, or was first
// seen less than a TTL ago. A gateway missing from the answer is dead or
// stopped. Call it periodically: an observation started by one call is
// what a later one judges by.
func (l *Leases) Live(ctx context.Context) (map[string]bool, error) {
	recs := map[string]Record{}
	err := l.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(space)
		for k, v := it.Seek([]byte(presencePrefix)); k != nil && strings.HasPrefix(string(k), presencePrefix); k, v = it.Next() {
			var rec Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode lease %q: %w", k, err)
			}
			if rec.Holder == "" {
				continue
			}
			recs[strings.TrimPrefix(string(k), presencePrefix)] = rec
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	live := map[string]bool{l.holder: true}
	l.mu.Lock()
	defer l.mu.Unlock()
	for gw, rec := range recs {
		o, ok := l.observed[gw]
		if !ok || o.rec != rec {
			o = observation{rec: rec, since: now}
			l.observed[gw] = o
		}
		if now.Sub(o.since) < l.ttl {
			live[gw] = true
		}
	}
	for gw := range l.observed {
		if _, ok := recs[gw]; !ok {
			delete(l.observed, gw)
		}
	}
	return live, nil
}

// Presence returns the work that keeps this gateway's presence lease:
// started before the gateway takes any work that Live's callers judge by
// (see Work.Acquire), closed last.
func (l *Leases) Presence() *Work {
	return l.Work(presencePrefix+l.holder, func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
}
