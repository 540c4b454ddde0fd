package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// A continuous point's copies follow it piece by piece: after each piece
// its stream appends, and at each copy job the plan starts after a base,
// the pieces a destination lacks are sent to it (the destination keeps the
// same sequence numbers), then the windows the source had when it listed
// them. A destination's copy is restorable as far as its pieces reach; a
// destination that is down is caught up when it answers again.

// ContinuousIn is the part of a CopyIn that carries a piece of a
// continuous point, or its windows.
type ContinuousIn struct {
	// Piece is the piece sent (PointID names it in the destination's
	// repository as in the source's); nil when only Windows are sent.
	Piece *Piece `json:",omitempty"`
	// Windows, when not nil, replace the destination's windows: the
	// source's, as of a listing of pieces all of which the destination
	// holds.
	Windows []Window `json:",omitempty"`
}

// beginPieceIn receives a piece of a continuous point, or its windows.
func (s *Service) beginPieceIn(ctx context.Context, in CopyIn, vr *Vault) (vault.Target, *RecoveryPoint, error) {
	if !strings.HasPrefix(in.PointID, ContinuousPrefix) || strings.Contains(in.PointID, "/") {
		return nil, nil, errorf(ErrInvalidParameter, "Invalid continuous recovery point ID %q.", in.PointID)
	}
	rp, err := s.copiedContinuous(ctx, in, vr)
	if err != nil {
		return nil, nil, err
	}
	c := in.Continuous
	if c.Piece == nil {
		if c.Windows != nil {
			err = s.cat.update(ctx, func(tx meta.Tx) error {
				st, err := loadStream(tx, rp)
				if err != nil {
					return err
				}
				st.Windows = c.Windows
				return putJSON(tx, spaceStreams, streamKey(rp), st)
			})
		}
		return nil, rp, err
	}
	p := *c.Piece
	if p.PointID != "" && strings.ContainsAny(p.PointID, "/:") {
		return nil, nil, errorf(ErrInvalidParameter, "Invalid piece ID %q.", p.PointID)
	}
	have := false
	if err := s.cat.view(ctx, func(tx meta.Tx) error {
		have = tx.Get(spacePieces, pieceKey(rp, p.Seq)) != nil
		return nil
	}); err != nil || have {
		return nil, rp, err
	}
	if p.PointID == "" { // a gap: nothing to transfer
		return nil, rp, s.recordPieceIn(ctx, rp, &p)
	}
	v, err := s.vault(ctx, in.AccountID, in.VaultName)
	if err != nil {
		return nil, nil, err
	}
	labels := map[string]string{"resource": rp.ResourceARN, "continuous": rp.PointID}
	w, err := v.Begin(ctx, p.PointID, labels)
	if errors.Is(err, vault.ErrExists) {
		if err := v.Delete(ctx, p.PointID); err != nil {
			return nil, nil, err
		}
		w, err = v.Begin(ctx, p.PointID, labels)
	}
	if err != nil {
		return nil, nil, err
	}
	return &pieceIn{copyIn: copyIn{Writer: w, s: s, rp: rp}, piece: &p}, nil, nil
}

// copiedContinuous returns the destination's copy of a continuous point,
// making it at its first piece.
func (s *Service) copiedContinuous(ctx context.Context, in CopyIn, vr *Vault) (*RecoveryPoint, error) {
	var out *RecoveryPoint
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		rp := &RecoveryPoint{}
		ok, err := getJSON(tx, spacePoints, key(in.AccountID, in.VaultName, in.PointID), rp)
		if err != nil {
			return err
		}
		if ok {
			out = rp
			return nil
		}
		v, err := getVault(tx, in.AccountID, in.VaultName)
		if err != nil {
			return err
		}
		cp := in.Point
		cp.AccountID, cp.PointID = in.AccountID, in.PointID
		cp.ARN = s.cat.RecoveryPointARN(in.AccountID, in.PointID)
		cp.VaultName, cp.VaultARN, cp.EncryptionKeyARN = vr.Name, vr.ARN, vr.EncryptionKeyARN
		cp.StorageClass, cp.Status, cp.Origin = StorageWarm, PointCreating, "copy"
		cp.CalculatedLifecycle = nil
		v.NumberOfRecoveryPoints++
		if err := putJSON(tx, spaceVaults, key(in.AccountID, in.VaultName), v); err != nil {
			return err
		}
		if err := putJSON(tx, spaceStreams, streamKey(&cp), &streamState{}); err != nil {
			return err
		}
		out = &cp
		return putJSON(tx, spacePoints, key(cp.AccountID, cp.VaultName, cp.PointID), &cp)
	})
	return out, err
}

// recordPieceIn records a piece received; a base makes the copy COMPLETED.
func (s *Service) recordPieceIn(ctx context.Context, rp *RecoveryPoint, p *Piece) error {
	return s.cat.update(context.WithoutCancel(ctx), func(tx meta.Tx) error {
		cur := &RecoveryPoint{}
		if ok, err := getJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "Recovery point %s was deleted during the copy.", rp.ARN)
		}
		st, err := loadStream(tx, cur)
		if err != nil {
			return err
		}
		if p.Seq >= st.NextSeq {
			st.NextSeq = p.Seq + 1
		}
		if err := putJSON(tx, spacePieces, pieceKey(cur, p.Seq), p); err != nil {
			return err
		}
		if err := putJSON(tx, spaceStreams, streamKey(cur), st); err != nil {
			return err
		}
		cur.BytesNew += p.BytesNew
		if p.Kind == PieceBase {
			done := s.cat.clock()
			cur.Status, cur.CompletionDate = PointCompleted, &done
			cur.BackupSizeInBytes, cur.Objects = p.Bytes, p.Entries
			cur.ResourceMetadata = p.Metadata
		}
		return putJSON(tx, spacePoints, key(cur.AccountID, cur.VaultName, cur.PointID), cur)
	})
}

// pieceIn is the receiving end of a piece: its commit records the piece.
type pieceIn struct {
	copyIn
	piece *Piece
}

func (c *pieceIn) Commit(ctx context.Context) (*vault.Point, error) {
	p, err := c.Writer.Commit(ctx)
	if err != nil {
		return nil, err
	}
	c.piece.BytesNew = p.BytesNew
	return p, c.s.recordPieceIn(ctx, c.rp, c.piece)
}

// syncCopiesSoon has the point's copies caught up: by a catch-up that
// runs already, which goes round once more, or by a new one. A catch-up
// that fails tries again after a pause, until it succeeds or the service
// closes, so that a destination down for hours is caught up when it is
// back even if the source is idle by then.
func (s *Service) syncCopiesSoon(rp *RecoveryPoint) {
	s.streams.mu.Lock()
	if st, ok := s.streams.syncing[rp.ARN]; ok {
		st.dirty = true
		s.streams.mu.Unlock()
		return
	}
	st := &syncState{dirty: true}
	s.streams.syncing[rp.ARN] = st
	s.streams.mu.Unlock()
	started := s.start(func(ctx context.Context) {
		pause := time.Second
		for {
			s.streams.mu.Lock()
			if !st.dirty || ctx.Err() != nil {
				delete(s.streams.syncing, rp.ARN)
				s.streams.mu.Unlock()
				return
			}
			st.dirty = false
			s.streams.mu.Unlock()
			if err := s.syncAll(ctx, rp); err == nil {
				pause = time.Second
				continue
			} else if ctx.Err() == nil {
				s.log.Warn("continuous backup: copy not caught up; trying again", "point", rp.ARN, "err", err, "pause", pause)
			}
			s.streams.mu.Lock()
			st.dirty = true
			s.streams.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			pause = min(2*pause, 30*time.Second)
		}
	})
	if !started {
		s.streams.mu.Lock()
		delete(s.streams.syncing, rp.ARN)
		s.streams.mu.Unlock()
	}
}

// syncState is a pending catch-up of a point's copies.
type syncState struct{ dirty bool }

// syncAll catches every destination of a continuous point up.
func (s *Service) syncAll(ctx context.Context, rp *RecoveryPoint) error {
	var dests []CopyAction
	if err := s.cat.view(ctx, func(tx meta.Tx) error {
		st, err := loadStream(tx, rp)
		if err == nil {
			dests = st.Destinations
		}
		return err
	}); err != nil {
		return err
	}
	var errs []error
	for _, d := range dests {
		if _, err := s.syncContinuous(ctx, rp, d.DestinationBackupVaultArn, d.Lifecycle, rp.IAMRoleARN); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.DestinationBackupVaultArn, err))
		}
	}
	return errors.Join(errs...)
}

// syncContinuous sends a destination the pieces of a continuous point it
// lacks, then the windows they make, and returns the bytes sent.
func (s *Service) syncContinuous(ctx context.Context, rp *RecoveryPoint, destARN string, l *Lifecycle, role string) (vault.TransferStats, error) {
	var total vault.TransferStats
	region, account, vaultName, ok := parseVaultARN(destARN)
	if !ok {
		return total, errorf(ErrInvalidParameter, "Invalid destination vault ARN %s.", destARN)
	}
	pieces, st, err := s.pieces(ctx, rp)
	if err != nil {
		return total, err
	}
	windows := st.Windows
	sortPieces(pieces)
	src, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return total, err
	}
	base := CopyIn{AccountID: account, VaultName: vaultName, PointID: rp.PointID, Point: RecoveryPoint{
		AccountID: account, ResourceARN: rp.ResourceARN, ResourceType: rp.ResourceType, IAMRoleARN: role,
		BackupJobID: rp.BackupJobID, CreationDate: rp.CreationDate, Lifecycle: l,
		CreatedBy: rp.CreatedBy, SourceBackupVaultARN: rp.VaultARN, SourceRecoveryPointARN: rp.ARN,
		ResourceMetadata: rp.ResourceMetadata,
	}}
	begin := func(in CopyIn) (vault.Target, *RecoveryPoint, error) {
		if region == s.cat.Region() {
			return s.BeginCopyIn(ctx, in)
		}
		if s.remote == nil {
			return nil, nil, errorf(ErrInvalidParameter, "Region %s is not known to this region.", region)
		}
		return s.remote.BeginCopy(ctx, region, in)
	}
	// One catch-up of a destination at a time: a copy job's and the
	// stream's would send the same pieces.
	s.streams.mu.Lock()
	mu := s.streams.sending[rp.ARN+" "+destARN]
	if mu == nil {
		mu = &sync.Mutex{}
		s.streams.sending[rp.ARN+" "+destARN] = mu
	}
	s.streams.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	s.streams.mu.Lock()
	synced := s.streams.synced[rp.ARN+" "+destARN]
	s.streams.mu.Unlock()
	for _, p := range pieces {
		if p.Seq < synced {
			continue
		}
		in := base
		in.Continuous = &ContinuousIn{Piece: p}
		dst, _, err := begin(in)
		if err != nil {
			return total, err
		}
		if dst != nil {
			_, st, err := src.Transfer(ctx, p.PointID, dst, nil)
			total.Entries += st.Entries
			total.Bytes += st.Bytes
			total.Sent += st.Sent
			if err != nil {
				return total, err
			}
		}
		s.streams.mu.Lock()
		s.streams.synced[rp.ARN+" "+destARN] = p.Seq + 1
		s.streams.mu.Unlock()
	}
	in := base
	in.Continuous = &ContinuousIn{Windows: windows}
	if windows == nil {
		in.Continuous.Windows = []Window{}
	}
	_, _, err = begin(in)
	return total, err
}

// copyContinuous is a copy job of a continuous point: it catches the
// destination up.
func (s *Service) copyContinuous(ctx context.Context, j *CopyJob, p *RecoveryPoint) (vault.TransferStats, error) {
	defer s.jobRunning(kindCopy)()
	st, err := s.syncContinuous(ctx, p, j.DestinationBackupVaultARN, j.Lifecycle, j.IAMRoleARN)
	j.DestPointID = p.PointID
	return st, err
}
