package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// Continuous backup (AWS Backup's EnableContinuousBackup): one recovery
// point per resource and vault, arn:...:recovery-point:continuous:ID,
// that can be restored to any instant of its window. It is a chain of
// pieces, each a committed point of the vault's repository:
//
//   - a base is a snapshot of the resource, written by a backup job (the
//     plan's schedule) through the provider's Backup, as for a snapshot
//     point;
//   - a log piece holds the resource's changes, which the provider's
//     Stream appends for as long as the point exists (WAL of a database,
//     versions of a bucket's change feed), each with the instant up to
//     which the changes are complete.
//
// A restore to instant T reads the newest base taken at or before T in
// the window that holds T, and the log pieces after it up to T. The
// window is where the log is complete: it opens at the stream's first
// position (a start, or a restart after a gap the provider reported) and
// ends at the last instant the provider vouched for. Pieces go to copies
// in other vaults as they are written, and the lifecycle's DeleteAfterDays
// drops the pieces older than the retention instead of the whole point.

const (
	spacePieces  = "backup-pieces"  // account/vault/pointID/seq → Piece
	spaceStreams = "backup-streams" // account/vault/pointID → streamState

	// ContinuousPrefix starts the ID of a continuous recovery point.
	ContinuousPrefix = "continuous:"

	PieceBase = "base"
	PieceLog  = "log"
	PieceGap  = "gap"

	// PointStopped is the status of a continuous point whose stream has
	// ended for good (its resource is gone).
	PointStopped = "STOPPED"
	// PointCreating is the status of a continuous point until its first
	// base completes.
	PointCreating = "CREATING"

	// MetaRestoreTime is the restore metadata key of the instant a
	// continuous point is restored to: RFC 3339, or Unix seconds.
	MetaRestoreTime = "RestoreTime"
)

// Piece is one part of a continuous point.
type Piece struct {
	Seq  uint64
	Kind string // PieceBase, PieceLog or PieceGap
	// PointID names the piece's point in the vault's repository; empty
	// for a gap.
	PointID string `json:",omitempty"`
	// From and To bound what the piece holds: for a base, the job's start
	// and the instant the snapshot is consistent at (its commit); for a
	// log piece, the instant the previous piece ended at and the instant
	// up to which the resource's changes are complete in the chain.
	From, To time.Time
	// Cursor is the provider's position after the piece (log pieces).
	Cursor   []byte `json:",omitempty"`
	Entries  int64  `json:",omitempty"`
	Bytes    int64  `json:",omitempty"`
	BytesNew int64  `json:",omitempty"`
	// Message says why there is a gap.
	Message string `json:",omitempty"`
	// Metadata is the base's BackupResult.Metadata.
	Metadata map[string]string `json:",omitempty"`
}

// Window is a stretch of time a continuous point's log covers.
type Window struct {
	Since time.Time
	Until time.Time
}

// streamState is the position of a continuous point's stream.
type streamState struct {
	NextSeq uint64
	Cursor  []byte `json:",omitempty"`
	// Windows are the stretches the log covers, oldest first; the last
	// is open (Until moves on) unless Broken.
	Windows []Window `json:",omitempty"`
	Broken  bool     `json:",omitempty"`
	// Retained is the earliest instant the retention keeps restorable
	// (the lifecycle's DeleteAfterDays before the last expiry pass).
	Retained time.Time `json:",omitempty"`
	// Destinations are the vaults the point's pieces are copied to, as
	// vault ARNs, with their lifecycles.
	Destinations []CopyAction `json:",omitempty"`
}

// ContinuousProvider is a Provider that can back its resources up
// continuously.
type ContinuousProvider interface {
	Provider
	// Streams reports whether res can be backed up continuously. A plan
	// rule with EnableContinuousBackup takes snapshots of a resource that
	// cannot, as AWS Backup does for resource types without continuous
	// backup.
	Streams(ctx context.Context, res *Resource) bool
	// Stream appends the resource's changes to run until ctx ends, and
	// then returns ctx's error. Any other error is logged and Stream is
	// called again after a pause, with run.Cursor at the last piece it
	// appended. Stream must never append a piece claiming changes up to
	// an instant unless every change up to it is in the chain; when it
	// finds changes lost (a position the source no longer has), it calls
	// run.Gap.
	Stream(ctx context.Context, run *StreamRun) error
	// EndStream lets go of what the stream of a deleted continuous point
	// held at its source (a replication slot, a hold on a change feed).
	// It may be called when no stream ran, and more than once.
	EndStream(ctx context.Context, rp *RecoveryPoint) error
}

// StreamRun is a continuous point's stream as its provider sees it.
type StreamRun struct {
	Resource *Resource
	// Point is the continuous point the stream appends to.
	Point *RecoveryPoint

	s    *Service
	v    *vault.Vault
	mu   sync.Mutex
	last streamState
}

// Cursor is the provider's position after the last piece appended (or
// advanced to); nil when the stream starts for the first time or after a
// gap.
func (r *StreamRun) Cursor() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.last.Cursor...)
}

// Append writes one log piece: the entries fill puts (put streams one
// entry's data), complete in the vault, then recorded with the instant to
// and the provider's cursor after it in one step. A fill that fails leaves
// nothing, and the cursor where it was.
func (r *StreamRun) Append(ctx context.Context, to time.Time, cursor []byte, fill func(put func(e vault.Entry, body io.Reader) error) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := r.last.NextSeq
	id := pieceID(r.Point.PointID, seq)
	labels := map[string]string{"resource": r.Point.ResourceARN, "continuous": r.Point.PointID}
	w, err := r.v.Begin(ctx, id, labels)
	if errors.Is(err, vault.ErrExists) {
		// Committed by a run that died before recording it: the cursor
		// did not move, so its changes come again.
		if err := r.v.Delete(ctx, id); err != nil {
			return err
		}
		w, err = r.v.Begin(ctx, id, labels)
	}
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = w.Abort(context.WithoutCancel(ctx))
		}
	}()
	err = fill(func(e vault.Entry, body io.Reader) error {
		release, err := r.s.space.Admit(e.Size)
		if err != nil {
			return err
		}
		defer release()
		return w.Put(ctx, e, body)
	})
	if err != nil {
		return err
	}
	pt, err := w.Commit(ctx)
	if err != nil {
		return err
	}
	committed = true
	from := r.last.lastUntil()
	piece := &Piece{Seq: seq, Kind: PieceLog, PointID: id, From: from, To: to.UTC(), Cursor: cursor, Entries: pt.Entries, Bytes: pt.Bytes, BytesNew: pt.BytesNew}
	if err := r.s.advance(ctx, r.Point, &r.last, piece, to, cursor); err != nil {
		return err
	}
	r.s.syncCopiesSoon(r.Point)
	return nil
}

// Advance records that the resource's changes up to to are complete in
// the chain, with nothing new to store (the resource was idle), and the
// cursor after them.
func (r *StreamRun) Advance(ctx context.Context, to time.Time, cursor []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s.advance(ctx, r.Point, &r.last, nil, to, cursor)
}

// Gap records that the provider lost changes since its cursor: the window
// ends at the last instant vouched for, and a new one opens at the next
// Advance or Append, from which a base is needed again.
func (r *StreamRun) Gap(ctx context.Context, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.log.Warn("continuous backup: changes lost, the restorable window restarts", "point", r.Point.ARN, "reason", reason)
	return r.s.cat.update(ctx, func(tx meta.Tx) error {
		if tx.Get(spacePoints, key(r.Point.AccountID, r.Point.VaultName, r.Point.PointID)) == nil {
			return errorf(ErrNotFound, "Recovery point %s was deleted.", r.Point.ARN)
		}
		st, err := loadStream(tx, r.Point)
		if err != nil {
			return err
		}
		seq := st.NextSeq
		st.NextSeq++
		st.Broken, st.Cursor = true, nil
		now := r.s.cat.clock()
		if err := putJSON(tx, spacePieces, pieceKey(r.Point, seq), &Piece{Seq: seq, Kind: PieceGap, From: st.lastUntil(), To: now, Message: reason}); err != nil {
			return err
		}
		r.last = *st
		return putJSON(tx, spaceStreams, streamKey(r.Point), st)
	})
}

func (st *streamState) lastUntil() time.Time {
	if n := len(st.Windows); n > 0 {
		return st.Windows[n-1].Until
	}
	return time.Time{}
}

// advance records a log piece (when not nil) and moves the open window's
// end to to, in one transaction. The first position after a start or a
// gap opens a window.
func (s *Service) advance(ctx context.Context, rp *RecoveryPoint, last *streamState, piece *Piece, to time.Time, cursor []byte) error {
	to = to.UTC()
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		if tx.Get(spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID)) == nil {
			// Deleted while the piece was written: it is garbage for
			// the vault's collection.
			return errorf(ErrNotFound, "Recovery point %s was deleted.", rp.ARN)
		}
		st, err := loadStream(tx, rp)
		if err != nil {
			return err
		}
		if piece != nil {
			piece.Seq = st.NextSeq
			st.NextSeq++
			if err := putJSON(tx, spacePieces, pieceKey(rp, piece.Seq), piece); err != nil {
				return err
			}
		}
		n := len(st.Windows)
		switch {
		case n == 0 || st.Broken:
			st.Windows = append(st.Windows, Window{Since: to, Until: to})
			st.Broken = false
		case to.After(st.Windows[n-1].Until):
			st.Windows[n-1].Until = to
		}
		st.Cursor = cursor
		*last = *st
		return putJSON(tx, spaceStreams, streamKey(rp), st)
	})
}

func pieceID(pointID string, seq uint64) string {
	return strings.TrimPrefix(pointID, ContinuousPrefix) + "." + strconv.FormatUint(seq, 10)
}

func pieceKey(rp *RecoveryPoint, seq uint64) []byte {
	return seqKey(key(rp.AccountID, rp.VaultName, rp.PointID), seq)
}

func streamKey(rp *RecoveryPoint) []byte { return key(rp.AccountID, rp.VaultName, rp.PointID) }

func loadStream(tx meta.Tx, rp *RecoveryPoint) (*streamState, error) {
	st := &streamState{}
	if _, err := getJSON(tx, spaceStreams, streamKey(rp), st); err != nil {
		return nil, err
	}
	return st, nil
}

// IsContinuous reports whether a point is a continuous one.
func (p *RecoveryPoint) IsContinuous() bool { return strings.HasPrefix(p.PointID, ContinuousPrefix) }

// Pieces returns a continuous point's pieces, in order, and the windows
// its log covers, cut at what the retention keeps.
func (s *Service) Pieces(ctx context.Context, rp *RecoveryPoint) ([]*Piece, []Window, error) {
	pieces, st, err := s.pieces(ctx, rp)
	if err != nil {
		return nil, nil, err
	}
	return pieces, retained(st), nil
}

// retained is a stream's windows from what its retention keeps on.
func retained(st *streamState) []Window {
	var out []Window
	for _, w := range st.Windows {
		if w.Until.Before(st.Retained) {
			continue
		}
		out = append(out, w)
	}
	return out
}

func (s *Service) pieces(ctx context.Context, rp *RecoveryPoint) ([]*Piece, *streamState, error) {
	var out []*Piece
	var st *streamState
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		if st, err = loadStream(tx, rp); err != nil {
			return err
		}
		return scan(tx, spacePieces, key(rp.AccountID, rp.VaultName, rp.PointID), func(_, v []byte) error {
			p := &Piece{}
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return out, st, nil
}

// RestorableWindows are the stretches of time a continuous point can be
// restored to: each window of its log from its first base on.
func (s *Service) RestorableWindows(ctx context.Context, rp *RecoveryPoint) ([]Window, error) {
	pieces, st, err := s.pieces(ctx, rp)
	if err != nil {
		return nil, err
	}
	return restorableWindows(pieces, st), nil
}

// restorableWindows are the stretches of the log's windows from their
// first base on, and from what the retention keeps on.
func restorableWindows(pieces []*Piece, st *streamState) []Window {
	var out []Window
	for _, w := range st.Windows {
		var first time.Time
		for _, p := range pieces {
			if p.Kind == PieceBase && !p.To.Before(w.Since) && !p.To.After(w.Until) && (first.IsZero() || p.To.Before(first)) {
				first = p.To
			}
		}
		if first.IsZero() || w.Until.Before(st.Retained) {
			continue
		}
		if first.Before(st.Retained) {
			first = st.Retained
		}
		out = append(out, Window{Since: first, Until: w.Until})
	}
	return out
}

// piecesFor returns the pieces a restore to t reads: the newest base at or
// before t in the window holding t, then the log pieces from the base's
// start up to the one that reaches t.
func piecesFor(pieces []*Piece, st *streamState, t time.Time) ([]*Piece, error) {
	windows := st.Windows
	var win *Window
	for i, w := range windows {
		if !t.Before(w.Since) && !t.After(w.Until) {
			win = &windows[i]
		}
	}
	if win == nil {
		return nil, fmt.Errorf("no window holds %s", t.Format(time.RFC3339Nano))
	}
	var base *Piece
	for _, p := range pieces {
		if p.Kind == PieceBase && !p.To.Before(win.Since) && !p.To.After(t) && (base == nil || p.To.After(base.To)) {
			base = p
		}
	}
	if base == nil {
		return nil, fmt.Errorf("no base backup at or before %s", t.Format(time.RFC3339Nano))
	}
	out := []*Piece{base}
	// The log from the last piece that ended before the base began: a
	// source whose clock is behind Bulwark's may have put changes made
	// after the base began into it.
	var before *Piece
	for _, p := range pieces {
		if p.Kind != PieceLog || p.To.Before(win.Since) || p.From.After(win.Until) {
			continue
		}
		if p.To.Before(base.From) {
			before = p
			continue
		}
		if before != nil {
			out, before = append(out, before), nil
		}
		out = append(out, p)
		if !p.To.Before(t) {
			break
		}
	}
	return out, nil
}

// ParseRestoreTime reads the RestoreTime of a restore's metadata: RFC 3339
// (fractions allowed) or Unix seconds (fractions allowed).
func ParseRestoreTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
	}
	return time.Time{}, errorf(ErrInvalidParameter, "Invalid RestoreTime %q: an RFC 3339 time (2026-01-02T15:04:05Z) or Unix seconds.", v)
}

// restoreTime is the instant a restore of a continuous point goes to: its
// metadata's RestoreTime, or the end of the newest window.
func (s *Service) restoreTime(ctx context.Context, rp *RecoveryPoint, md map[string]string) (time.Time, []Window, error) {
	ws, err := s.RestorableWindows(ctx, rp)
	if err != nil {
		return time.Time{}, nil, err
	}
	v, ok := md[MetaRestoreTime]
	if !ok || v == "" {
		if len(ws) == 0 {
			return time.Time{}, nil, errorf(ErrInvalidRequest, "Continuous recovery point %s has no restorable window: no base backup completed within its log and its retention.", rp.ARN)
		}
		return ws[len(ws)-1].Until, ws, nil
	}
	t, err := ParseRestoreTime(v)
	if err != nil {
		return time.Time{}, nil, err
	}
	if len(ws) == 0 {
		return time.Time{}, nil, errorf(ErrInvalidParameter, "RestoreTime %s is outside the restorable window of %s, which has none: no base backup completed within its log and its retention.", t.Format(time.RFC3339Nano), rp.ARN)
	}
	for _, w := range ws {
		if !t.Before(w.Since) && !t.After(w.Until) {
			return t, ws, nil
		}
	}
	return time.Time{}, nil, errorf(ErrInvalidParameter, "RestoreTime %s is outside the restorable window of %s (%s).", t.Format(time.RFC3339Nano), rp.ARN, describeWindows(ws))
}

func describeWindows(ws []Window) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.Since.Format(time.RFC3339Nano) + " to " + w.Until.Format(time.RFC3339Nano)
	}
	return strings.Join(parts, ", ")
}

// RestorePiece is a piece of a continuous point a restore reads.
type RestorePiece struct {
	Piece
	run *RestoreRun
}

// Entries calls fn for every item of the piece, in the order they were put.
func (p *RestorePiece) Entries(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error {
	return p.run.v.Entries(ctx, p.PointID, fn)
}

// Pieces returns what a restore of a continuous point to run.RestoreTime
// reads, in order: the base, then the log pieces up to the one that
// reaches RestoreTime. Nil for a snapshot point.
func (r *RestoreRun) Pieces() []*RestorePiece { return r.pieces }

// continuousPoint returns the account's continuous point of a resource in
// a vault, making it (status CREATING, until its first base) when there
// is none.
func (s *Service) continuousPoint(ctx context.Context, j *BackupJob, dests []CopyAction) (*RecoveryPoint, error) {
	var out *RecoveryPoint
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		if err := scan(tx, spacePoints, key(j.AccountID, j.VaultName), func(_, v []byte) error {
			p := &RecoveryPoint{}
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			if p.IsContinuous() && p.ResourceARN == j.ResourceARN && p.Status != PointStopped && out == nil {
				out = p
			}
			return nil
		}); err != nil {
			return err
		}
		if out != nil {
			st, err := loadStream(tx, out)
			if err != nil {
				return err
			}
			st.Destinations = dests
			out.Lifecycle, out.CalculatedLifecycle = j.Lifecycle, nil
			if err := putJSON(tx, spacePoints, key(out.AccountID, out.VaultName, out.PointID), out); err != nil {
				return err
			}
			return putJSON(tx, spaceStreams, streamKey(out), st)
		}
		v, err := getVault(tx, j.AccountID, j.VaultName)
		if err != nil {
			return err
		}
		id := ContinuousPrefix + newUUID()
		out = &RecoveryPoint{
			AccountID: j.AccountID, ARN: s.cat.RecoveryPointARN(j.AccountID, id), VaultName: j.VaultName, VaultARN: j.VaultARN,
			ResourceARN: j.ResourceARN, ResourceType: j.ResourceType, IAMRoleARN: j.IAMRoleARN, BackupJobID: j.JobID,
			CreationDate: j.CreationDate, Status: PointCreating, Lifecycle: j.Lifecycle,
			Origin: "plan", CreatedBy: j.CreatedBy, StorageClass: StorageWarm, PointID: id, EncryptionKeyARN: v.EncryptionKeyARN,
		}
		v.NumberOfRecoveryPoints++
		if err := putJSON(tx, spaceVaults, key(j.AccountID, j.VaultName), v); err != nil {
			return err
		}
		if err := putJSON(tx, spaceStreams, streamKey(out), &streamState{Destinations: dests}); err != nil {
			return err
		}
		return putJSON(tx, spacePoints, key(out.AccountID, out.VaultName, out.PointID), out)
	})
	return out, err
}

// addBase records a base the job wrote into the continuous point: the
// point is COMPLETED from its first base on.
func (s *Service) addBase(ctx context.Context, rp *RecoveryPoint, j *BackupJob, pt *vault.Point, result BackupResult, from time.Time) (*RecoveryPoint, error) {
	var out *RecoveryPoint
	err := s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		cur := &RecoveryPoint{}
		if ok, err := getJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "Continuous recovery point %s was deleted during the backup.", rp.ARN)
		}
		st, err := loadStream(tx, cur)
		if err != nil {
			return err
		}
		seq := st.NextSeq
		st.NextSeq++
		piece := &Piece{Seq: seq, Kind: PieceBase, PointID: pt.ID, From: from, To: time.Now().UTC(),
			Entries: pt.Entries, Bytes: pt.Bytes, BytesNew: pt.BytesNew, Metadata: result.Metadata}
		if err := putJSON(tx, spacePieces, pieceKey(cur, seq), piece); err != nil {
			return err
		}
		if err := putJSON(tx, spaceStreams, streamKey(cur), st); err != nil {
			return err
		}
		done := piece.To
		cur.Status, cur.StatusMessage, cur.CompletionDate = PointCompleted, "", &done
		cur.BackupSizeInBytes, cur.BytesNew, cur.Objects = pt.Bytes, cur.BytesNew+pt.BytesNew, pt.Entries
		cur.ResourceMetadata = result.Metadata
		cur.BackupJobID = j.JobID
		out = cur
		return putJSON(tx, spacePoints, key(cur.AccountID, cur.VaultName, cur.PointID), cur)
	})
	return out, err
}

// streams runs the streams of continuous points.
type streams struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc // by point ARN
	syncing map[string]*syncState         // by point ARN: a pending catch-up of its copies
	// synced is, by point ARN and destination vault ARN, the sequence
	// number below which the destination holds every piece.
	synced map[string]uint64
	// sending serializes the catch-ups of one destination.
	sending map[string]*sync.Mutex
	// leased is set when several gateways serve the region: streams run
	// only in the one holding the streams' lease, while held is set
	// (ResumeStreams, StopStreams).
	leased, held bool
}

// stopStreams stops every stream this service runs, until ResumeStreams.
func (s *Service) stopStreams() {
	s.streams.mu.Lock()
	s.streams.held = false
	cancels := make([]context.CancelFunc, 0, len(s.streams.running))
	for _, c := range s.streams.running {
		cancels = append(cancels, c)
	}
	s.streams.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

// ensureStream starts the stream of a continuous point unless it runs.
func (s *Service) ensureStream(rp *RecoveryPoint) {
	p, err := s.providers.Lookup(rp.ResourceARN)
	if err != nil {
		return
	}
	cp, ok := p.(ContinuousProvider)
	if !ok {
		return
	}
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	if _, ok := s.streams.running[rp.ARN]; ok || (s.streams.leased && !s.streams.held) {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	if !s.start(func(context.Context) {
		defer func() {
			cancel()
			s.streams.mu.Lock()
			delete(s.streams.running, rp.ARN)
			s.streams.mu.Unlock()
		}()
		s.runStream(ctx, cp, rp)
	}) {
		cancel()
		return
	}
	s.streams.running[rp.ARN] = cancel
}

// stopStream stops a continuous point's stream (its point is deleted).
func (s *Service) stopStream(arn string) {
	s.streams.mu.Lock()
	c := s.streams.running[arn]
	s.streams.mu.Unlock()
	if c != nil {
		c()
	}
}

// runStream calls the provider's Stream until the service closes or the
// point goes, pausing after each failure.
func (s *Service) runStream(ctx context.Context, p ContinuousProvider, rp *RecoveryPoint) {
	pause := time.Second
	for ctx.Err() == nil {
		cur, err := s.findPoint(ctx, rp.AccountID, rp.ARN)
		if errors.Is(err, ErrNotFound) {
			return
		}
		if err == nil {
			err = s.streamOnce(ctx, p, cur)
		}
		if ctx.Err() != nil {
			return
		}
		var be *Error
		if errors.As(err, &be) && errors.Is(err, ErrNotFound) {
			s.stopPoint(ctx, rp, be.Message)
			return
		}
		s.log.Warn("continuous backup: stream ended, starting it again", "point", rp.ARN, "resource", rp.ResourceARN, "err", err, "pause", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

func (s *Service) streamOnce(ctx context.Context, p ContinuousProvider, rp *RecoveryPoint) error {
	res, err := p.Describe(ctx, rp.AccountID, rp.ResourceARN)
	if err != nil {
		return err
	}
	v, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return err
	}
	run := &StreamRun{Resource: res, Point: rp, s: s, v: v}
	if err := s.cat.view(ctx, func(tx meta.Tx) error {
		st, err := loadStream(tx, rp)
		if err == nil {
			run.last = *st
		}
		return err
	}); err != nil {
		return err
	}
	return p.Stream(ctx, run)
}

// stopPoint marks a continuous point STOPPED: its resource is gone.
func (s *Service) stopPoint(ctx context.Context, rp *RecoveryPoint, why string) {
	err := s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		cur := &RecoveryPoint{}
		if ok, err := getJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur); err != nil || !ok {
			return err
		}
		cur.Status, cur.StatusMessage = PointStopped, "Continuous backup stopped: "+why
		return putJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur)
	})
	if err != nil {
		s.log.Error("record continuous point stopped", "point", rp.ARN, "err", err)
	}
}

// resumeStreams starts the streams of the continuous points an earlier
// run of the service left.
func (s *Service) resumeStreams(ctx context.Context) error {
	s.streams.mu.Lock()
	s.streams.held = true
	s.streams.mu.Unlock()
	ps, err := s.pointsWhere(ctx, func(p *RecoveryPoint) bool {
		return p.IsContinuous() && p.Origin != "copy" && p.Status != PointStopped
	})
	for _, p := range ps {
		s.ensureStream(p)
	}
	return err
}

// prunePieces drops the pieces of a continuous point older than its
// retention at now, keeping the newest base before the cutoff and
// everything after it so that the window starts at the cutoff or later.
func (s *Service) prunePieces(ctx context.Context, rp *RecoveryPoint, now time.Time) error {
	if rp.Lifecycle == nil || rp.Lifecycle.DeleteAfterDays == nil {
		return nil
	}
	cutoff := now.AddDate(0, 0, -int(*rp.Lifecycle.DeleteAfterDays))
	if err := s.cat.update(ctx, func(tx meta.Tx) error {
		st, err := loadStream(tx, rp)
		if err != nil || !st.Retained.Before(cutoff) {
			return err
		}
		st.Retained = cutoff
		return putJSON(tx, spaceStreams, streamKey(rp), st)
	}); err != nil {
		return err
	}
	pieces, _, err := s.pieces(ctx, rp)
	if err != nil {
		return err
	}
	// The newest base at or before the cutoff anchors what is kept.
	keepFrom := -1
	for i, p := range pieces {
		if p.Kind == PieceBase && !p.To.After(cutoff) {
			keepFrom = i
		}
	}
	if keepFrom <= 0 {
		return nil
	}
	anchor := pieces[keepFrom]
	// Log pieces a restore from the anchor reads stay (piecesFor): those
	// that end after it began, and the last one before.
	lastBefore := -1
	for i, p := range pieces[:keepFrom] {
		if p.Kind == PieceLog && p.To.Before(anchor.From) {
			lastBefore = i
		}
	}
	var drop []*Piece
	for i, p := range pieces[:keepFrom] {
		if p.Kind == PieceLog && (!p.To.Before(anchor.From) || i == lastBefore) {
			continue
		}
		drop = append(drop, p)
	}
	if len(drop) == 0 {
		return nil
	}
	err = s.cat.update(ctx, func(tx meta.Tx) error {
		st, err := loadStream(tx, rp)
		if err != nil {
			return err
		}
		for _, p := range drop {
			if err := tx.Delete(spacePieces, pieceKey(rp, p.Seq)); err != nil {
				return err
			}
		}
		for len(st.Windows) > 1 && st.Windows[0].Until.Before(anchor.To) {
			st.Windows = st.Windows[1:]
		}
		return putJSON(tx, spaceStreams, streamKey(rp), st)
	})
	if err != nil {
		return err
	}
	v, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return err
	}
	for _, p := range drop {
		if p.PointID == "" {
			continue
		}
		if err := v.Delete(ctx, p.PointID); err != nil && !errors.Is(err, vault.ErrNotFound) {
			s.log.Warn("drop expired piece of a continuous point; the vault's collection will reclaim it", "point", rp.ARN, "piece", p.PointID, "err", err)
		}
	}
	s.markDirty(rp.AccountID, rp.VaultName)
	return nil
}

// deletePieces deletes every piece of a continuous point that was deleted.
func (s *Service) deletePieces(ctx context.Context, rp *RecoveryPoint) {
	s.stopStream(rp.ARN)
	if p, err := s.providers.Lookup(rp.ResourceARN); err == nil && rp.Origin != "copy" {
		if cp, ok := p.(ContinuousProvider); ok {
			if err := cp.EndStream(ctx, rp); err != nil {
				s.log.Warn("continuous backup: release what the stream held at its source", "point", rp.ARN, "err", err)
			}
		}
	}
	pieces, _, err := s.Pieces(ctx, rp)
	if err == nil {
		err = s.cat.update(ctx, func(tx meta.Tx) error {
			for _, p := range pieces {
				if err := tx.Delete(spacePieces, pieceKey(rp, p.Seq)); err != nil {
					return err
				}
			}
			return tx.Delete(spaceStreams, streamKey(rp))
		})
	}
	if err != nil {
		s.log.Warn("delete the pieces of a continuous point", "point", rp.ARN, "err", err)
		return
	}
	v, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return
	}
	for _, p := range pieces {
		if p.PointID != "" {
			_ = v.Delete(ctx, p.PointID)
		}
	}
}

// sortPieces orders pieces by sequence.
func sortPieces(ps []*Piece) {
	sort.Slice(ps, func(i, k int) bool { return ps[i].Seq < ps[k].Seq })
}

// canStream reports whether the resource arn names can be backed up
// continuously by its provider.
func (s *Service) canStream(ctx context.Context, p ContinuousProvider, account, arn string) bool {
	res, err := p.Describe(ctx, account, arn)
	return err == nil && p.Streams(ctx, res)
}

// DescribeWindows says, in words, which instants a continuous point can be
// restored to.
func DescribeWindows(ws []Window) string {
	if len(ws) == 0 {
		return "Continuous backup: not restorable yet (no base backup within the log's window)."
	}
	return "Continuous backup: restorable from " + describeWindows(ws) + "."
}
