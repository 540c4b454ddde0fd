package backup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// A bucket's continuous backup reads the store's change feed: every
// version written to the bucket (with its data), every delete marker and
// every version deleted for good goes into a log piece, so that the bucket
// can be restored to any instant of the window even after its versions
// were deleted at the source. The stream holds the feed (HoldFeed) at its
// cursor so that no record it has not stored is trimmed.

// Entry kinds of a bucket's log pieces.
const (
	logPut           = "put"
	logDeleteMarker  = "delete-marker"
	logDeleteVersion = "delete-version"
	// logLost is a version deleted for good before the stream read it:
	// the log knows of it but has no data.
	logLost = "lost"
)

// streamEvery is how often a bucket's stream reads the change feed; each
// read that finds changes of the bucket appends a piece.
var streamEvery = time.Second

// streamBatch bounds the change records one piece takes.
const streamBatch = 1000

func feedHold(rp *RecoveryPoint) string { return "backup " + rp.ARN }

func encodeSeq(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// Stream appends the bucket's changes to run, once a second.
func (p *S3Provider) Stream(ctx context.Context, run *StreamRun) error {
	bucket := run.Resource.Name
	hold := feedHold(run.Point)
	var cursor uint64
	if c := run.Cursor(); len(c) == 8 {
		cursor = binary.BigEndian.Uint64(c)
		st, err := p.store.FeedStats(ctx)
		if err != nil {
			return err
		}
		if st.First > cursor+1 {
			// Trimmed past the cursor (a hold lost with a restored
			// metadata store, say): those changes are gone.
			if err := run.Gap(ctx, fmt.Sprintf("the change feed no longer holds records %d to %d", cursor+1, st.First-1)); err != nil {
				return err
			}
			return errors.New("change feed trimmed past the stream's cursor; starting again from its end")
		}
	} else {
		// A new stream: it starts at the feed's end, and vouches for
		// nothing before now.
		last, at, err := p.store.FeedFence(ctx)
		if err != nil {
			return err
		}
		if err := p.store.HoldFeed(ctx, hold, last); err != nil {
			return err
		}
		if err := run.Advance(ctx, at, encodeSeq(last)); err != nil {
			return err
		}
		cursor = last
	}
	if err := p.store.HoldFeed(ctx, hold, cursor); err != nil {
		return err
	}
	t := time.NewTicker(streamEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		for {
			next, full, err := p.streamOnce(ctx, run, bucket, cursor)
			if err != nil {
				return err
			}
			if next != cursor {
				cursor = next
				if err := p.store.HoldFeed(ctx, hold, cursor); err != nil {
					return err
				}
			}
			if !full {
				break
			}
		}
	}
}

// streamOnce stores the bucket's changes after cursor, up to streamBatch
// records, and returns the new cursor and whether the batch was full.
func (p *S3Provider) streamOnce(ctx context.Context, run *StreamRun, bucket string, cursor uint64) (uint64, bool, error) {
	last, at, err := p.store.FeedFence(ctx)
	if err != nil {
		return cursor, false, err
	}
	if _, err := p.store.Bucket(ctx, bucket); errors.Is(err, objectstore.ErrNoSuchBucket) {
		return cursor, false, errorf(ErrNotFound, "Bucket %s was deleted.", bucket)
	}
	changes, err := p.store.Changes(ctx, cursor, streamBatch)
	if err != nil {
		return cursor, false, err
	}
	if len(changes) == 0 {
		return cursor, false, run.Advance(ctx, at, encodeSeq(cursor))
	}
	next := changes[len(changes)-1].Seq
	full := len(changes) == streamBatch && next < last
	to := at
	if next < last {
		// Changes after the batch wait for the next one: vouch only for
		// the instant before the first of them.
		more, err := p.store.Changes(ctx, next, 1)
		if err != nil {
			return cursor, false, err
		}
		if len(more) > 0 {
			to = more[0].Time.Add(-time.Nanosecond)
		}
	}
	var mine []objectstore.Change
	for _, c := range changes {
		if c.Bucket == bucket && (c.Kind == objectstore.ChangePut || c.Kind == objectstore.ChangeDeleteMarker || c.Kind == objectstore.ChangeDeleteVersion) {
			mine = append(mine, c)
		}
	}
	if len(mine) == 0 {
		return next, full, run.Advance(ctx, to, encodeSeq(next))
	}
	err = run.Append(ctx, to, encodeSeq(next), func(put func(vault.Entry, io.Reader) error) error {
		for _, c := range mine {
			if err := p.logChange(ctx, bucket, c, put); err != nil {
				return err
			}
		}
		return nil
	})
	return next, full, err
}

// logChange puts one change of the bucket into a log piece.
func (p *S3Provider) logChange(ctx context.Context, bucket string, c objectstore.Change, put func(vault.Entry, io.Reader) error) error {
	e := vault.Entry{Key: c.Key, VersionID: c.VersionID, LastModified: c.Time.UnixNano()}
	switch c.Kind {
	case objectstore.ChangeDeleteMarker:
		e.Kind = logDeleteMarker
		return put(e, strings.NewReader(""))
	case objectstore.ChangeDeleteVersion:
		e.Kind = logDeleteVersion
		return put(e, strings.NewReader(""))
	}
	ver, body, err := p.store.GetObject(ctx, bucket, c.Key, c.VersionID)
	if errors.Is(err, objectstore.ErrNoSuchVersion) || errors.Is(err, objectstore.ErrNoSuchKey) || errors.Is(err, objectstore.ErrNoSuchBucket) {
		e.Kind = logLost
		return put(e, strings.NewReader(""))
	}
	if err != nil {
		return err
	}
	defer body.Close()
	e = entryOf(ver)
	e.Kind = logPut
	return put(e, body)
}

// Streams is true: every bucket can be backed up continuously.
func (p *S3Provider) Streams(context.Context, *Resource) bool { return true }

// EndStream drops the stream's hold on the change feed.
func (p *S3Provider) EndStream(ctx context.Context, rp *RecoveryPoint) error {
	return p.store.ReleaseFeed(ctx, feedHold(rp))
}

// stateAt calls fn with every object of the bucket as it was at the
// restore's instant, from the base and the log pieces, in key order.
func (p *S3Provider) stateAt(ctx context.Context, run *RestoreRun, fn func(vault.Entry, vault.ObjectRef) error) error {
	type ver struct {
		e   vault.Entry
		ref vault.ObjectRef
	}
	pieces := run.Pieces()
	if len(pieces) == 0 {
		return errJob("Recovery point %s has no base backup to restore from.", run.Point.ARN)
	}
	base := pieces[0]
	// Every key's versions known to the base and the log, oldest first.
	keys := map[string][]ver{}
	if err := base.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
		keys[e.Key] = []ver{{e, ref}}
		return nil
	}); err != nil {
		return err
	}
	baseAt := base.From.UnixNano()
	until := run.RestoreTime.UnixNano()
	for _, pc := range pieces[1:] {
		err := pc.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
			if e.LastModified <= baseAt || e.LastModified > until {
				return nil // in the base already, or after the instant
			}
			switch e.Kind {
			case logDeleteVersion:
				vs := keys[e.Key]
				for i, v := range vs {
					if v.e.VersionID == e.VersionID {
						keys[e.Key] = slices.Delete(vs, i, i+1)
						break
					}
				}
			default: // put, delete marker, lost
				keys[e.Key] = append(keys[e.Key], ver{e, ref})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	var lost []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		vs := keys[k]
		if len(vs) == 0 {
			continue
		}
		cur := vs[len(vs)-1]
		switch cur.e.Kind {
		case logDeleteMarker:
			continue
		case logLost:
			lost = append(lost, k)
			continue
		}
		if err := fn(cur.e, cur.ref); err != nil {
			return err
		}
	}
	if len(lost) > 0 {
		return errJob("%d objects (first %q) had a version at %s that was deleted for good before the continuous backup read it; the others were restored.",
			len(lost), lost[0], run.RestoreTime.Format(time.RFC3339Nano))
	}
	return nil
}
