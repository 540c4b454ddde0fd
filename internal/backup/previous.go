package backup

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/bulwark/bulwark/internal/backup/vault"
)

// prevItem is what the previous point holds of an item. Metadata, tags
// and checksums are left out.
type prevItem struct {
	e   vault.Entry
	ref vault.ObjectRef
}

// previousPoint answers an incremental backup's questions about the
// previous point of the same resource.
//
// A provider that asks in key order (the bucket provider walks a bucket in
// key order) about a point whose entries are in key order (the vault keeps
// them in the order they were put, so a point of a bucket is) is answered
// from one pass over the point's entry list, read as the questions come:
// memory holds one entry, however large the point. The first question out
// of order, or an entry list found out of order, makes it load the point
// into a map, as lookups in any order need.
type previousPoint struct {
	v       *vault.Vault
	pointID string

	mu      sync.Mutex
	next    func() (prevEntry, bool)
	stop    func()
	cur     *prevEntry // the entry the stream stands on
	asked   string     // the last key asked about
	started bool
	m       map[string]prevItem // the whole point, once out of order
	err     error
}

type prevEntry struct {
	item prevItem
	err  error
}

// prevMapped counts the entries previous points loaded into maps, for
// tests.
var prevMapped atomic.Int64

// entries returns the point's entries as a sequence, metadata dropped.
func (p *previousPoint) entries(ctx context.Context) iter.Seq[prevEntry] {
	return func(yield func(prevEntry) bool) {
		stopped := errors.New("stopped")
		err := p.v.Entries(ctx, p.pointID, func(e vault.Entry, ref vault.ObjectRef) error {
			e.Metadata, e.Tags, e.Checksums = nil, nil, nil
			if !yield(prevEntry{item: prevItem{e: e, ref: ref}}) {
				return stopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, stopped) {
			yield(prevEntry{err: err})
		}
	}
}

// openPrevious returns the newest of points (newest first) whose entry
// list can be read, nil when none can.
func openPrevious(ctx context.Context, v *vault.Vault, points []string) (*previousPoint, error) {
	for _, id := range points {
		p := &previousPoint{v: v, pointID: id}
		p.next, p.stop = iter.Pull(p.entries(ctx))
		first, ok := p.next()
		switch {
		case ok && errors.Is(first.err, vault.ErrNotFound):
			p.stop()
			continue // deleted from the vault meanwhile
		case ok && first.err != nil:
			p.stop()
			return nil, first.err
		case ok:
			p.cur = &first
		}
		p.started = true
		return p, nil
	}
	return nil, nil
}

// lookup returns what the point holds under key.
func (p *previousPoint) lookup(ctx context.Context, key string) (prevItem, bool, error) {
	if p == nil {
		return prevItem{}, false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return prevItem{}, false, p.err
	}
	if p.m == nil && key < p.asked {
		p.err = p.load(ctx)
	}
	p.asked = key
	if p.m != nil || p.err != nil {
		it, ok := p.m[key]
		return it, ok, p.err
	}
	for p.cur != nil && p.cur.item.e.Key < key {
		last := p.cur.item.e.Key
		n, ok := p.next()
		switch {
		case !ok:
			p.cur = nil
		case n.err != nil:
			p.err = n.err
			return prevItem{}, false, p.err
		case n.item.e.Key < last:
			// Not in key order: the point must be read whole.
			p.err = p.load(ctx)
			it, ok := p.m[key]
			return it, ok, p.err
		default:
			p.cur = &n
		}
	}
	if p.cur != nil && p.cur.item.e.Key == key {
		return p.cur.item, true, nil
	}
	return prevItem{}, false, nil
}

// load reads the whole point into a map.
func (p *previousPoint) load(ctx context.Context) error {
	p.close()
	m := map[string]prevItem{}
	for n := range p.entries(ctx) {
		if n.err != nil {
			return n.err
		}
		m[n.item.e.Key] = n.item
	}
	prevMapped.Add(int64(len(m)))
	p.m = m
	return nil
}

func (p *previousPoint) close() {
	if p != nil && p.stop != nil {
		p.stop()
		p.stop = nil
	}
}
