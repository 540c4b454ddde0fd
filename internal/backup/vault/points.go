package vault

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/content/indexblob"
	"github.com/kopia/kopia/repo/maintenance"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/repo/object"
)

// Points lists the committed recovery points whose labels include all of
// labels (nil lists every point), oldest first.
func (v *Vault) Points(ctx context.Context, labels map[string]string) ([]*Point, error) {
	mds, err := v.rep.FindManifests(ctx, pointLabels("", labels))
	if err != nil {
		return nil, fmt.Errorf("list points: %w", err)
	}
	points := make([]*Point, 0, len(mds))
	for _, md := range mds {
		var p Point
		if _, err := v.rep.GetManifest(ctx, md.ID, &p); err != nil {
			return nil, fmt.Errorf("list points: manifest %s: %w", md.ID, err)
		}
		points = append(points, &p)
	}
	sort.Slice(points, func(i, j int) bool {
		if !points[i].Created.Equal(points[j].Created) {
			return points[i].Created.Before(points[j].Created)
		}
		return points[i].ID < points[j].ID
	})
	return points, nil
}

// point returns the manifest of a committed point, in r (the vault's
// repository or a writer session).
func point(ctx context.Context, r repo.Repository, id string) (*Point, manifest.ID, error) {
	mds, err := r.FindManifests(ctx, pointLabels(id, nil))
	if err != nil {
		return nil, "", fmt.Errorf("find point %q: %w", id, err)
	}
	if len(mds) == 0 {
		return nil, "", fmt.Errorf("point %q: %w", id, ErrNotFound)
	}
	var p Point
	if _, err := r.GetManifest(ctx, mds[0].ID, &p); err != nil {
		return nil, "", fmt.Errorf("point %q: %w", id, err)
	}
	return &p, mds[0].ID, nil
}

// Point returns one committed recovery point.
func (v *Vault) Point(ctx context.Context, id string) (*Point, error) {
	p, _, err := point(ctx, v.rep, id)
	return p, err
}

// Delete removes a recovery point's manifest. The content that only this
// point used becomes garbage, reclaimed by the next Collect.
func (v *Vault) Delete(ctx context.Context, pointID string) error {
	err := repo.WriteSession(ctx, v.rep, repo.WriteSessionOptions{Purpose: "bulwark delete point"},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			mds, err := w.FindManifests(ctx, pointLabels(pointID, nil))
			if err != nil {
				return err
			}
			if len(mds) == 0 {
				return ErrNotFound
			}
			for _, md := range mds {
				if err := w.DeleteManifest(ctx, md.ID); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("delete point %q: %w", pointID, err)
	}
	return nil
}

// Collect is garbage collection and maintenance: it marks content that no
// committed point references as deleted (and revives referenced content an
// earlier run marked), then runs kopia's full maintenance, which rewrites
// short packs, drops deleted content from the indexes and deletes pack blobs
// nothing refers to, including those an aborted or crashed writer left.
//
// Collect waits for open writers to finish and holds off new ones until it
// returns; see the package comment for why.
func (v *Vault) Collect(ctx context.Context) error {
	if err := v.enterCollect(ctx); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	defer v.leaveCollect()

	ctx, dw, err := v.rep.NewDirectWriter(ctx, repo.WriteSessionOptions{Purpose: "bulwark collect"})
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	defer dw.Close(ctx) //nolint:errcheck // only releases a reference; flushes are explicit

	err = maintenance.RunExclusive(ctx, dw, maintenance.ModeFull, true,
		func(ctx context.Context, rp maintenance.RunParameters) error {
			var (
				deletedAt time.Time
				rewrite   []content.ID
			)
			err := maintenance.ReportRun(ctx, dw, maintenance.TaskSnapshotGarbageCollection, nil, func() error {
				var err error
				deletedAt, rewrite, err = markUnreferenced(ctx, dw)
				return err
			})
			if err != nil {
				return err
			}
			return reclaim(ctx, dw, rp, deletedAt, rewrite)
		})
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if err := v.rep.Refresh(ctx); err != nil {
		return fmt.Errorf("collect: refresh: %w", err)
	}
	return nil
}

// reclaim turns contents marked deleted into free space. Kopia's own full
// maintenance would rewrite short packs with their deleted contents before
// dropping those, and keep the result one more cycle; dropping first and
// then compacting avoids that and reclaims in one Collect.
func reclaim(ctx context.Context, dw repo.DirectRepositoryWriter, rp maintenance.RunParameters, deletedAt time.Time, rewrite []content.ID) error {
	// Kopia stamps a deletion at least one second after the content's
	// write and drops only deletions stamped before the drop time: content
	// written just now would stay one more cycle. Waiting (at most about
	// two seconds, and only for content that young) avoids that.
	if wait := time.Until(deletedAt.Add(time.Second)); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := dw.ContentManager().CompactIndexes(ctx, indexblob.CompactOptions{
		AllIndexes:                       true,
		DropDeletedBefore:                dw.Time(),
		DisableEventualConsistencySafety: true,
	})
	if err != nil {
		return fmt.Errorf("drop deleted contents: %w", err)
	}
	if len(rewrite) > 0 {
		err := maintenance.RewriteContents(ctx, dw, &maintenance.RewriteContentsOptions{ContentIDs: rewrite}, maintenance.SafetyNone)
		if err != nil {
			return fmt.Errorf("compact packs: %w", err)
		}
	}
	// Index compaction, short-pack rewrite and deletion of the pack blobs
	// no index refers to any more.
	return maintenance.Run(ctx, rp, maintenance.SafetyNone)
}

// markUnreferenced is the mark-and-sweep over contents: everything reachable
// from a point manifest is live. It returns the latest deletion stamp it
// caused and the live contents of packs worth compacting.
func markUnreferenced(ctx context.Context, dw repo.DirectRepositoryWriter) (deletedAt time.Time, rewrite []content.ID, err error) {
	used := map[content.ID]struct{}{}
	addObject := func(id object.ID) error {
		cids, err := dw.VerifyObject(ctx, id)
		if err != nil {
			return fmt.Errorf("object %v: %w", id, err)
		}
		for _, c := range cids {
			used[c] = struct{}{}
		}
		return nil
	}
	mds, err := dw.FindManifests(ctx, pointLabels("", nil))
	if err != nil {
		return deletedAt, nil, err
	}
	for _, md := range mds {
		var p Point
		if _, err := dw.GetManifest(ctx, md.ID, &p); err != nil {
			return deletedAt, nil, err
		}
		lid, err := object.ParseID(p.EntryList)
		if err != nil {
			return deletedAt, nil, fmt.Errorf("point %q: entry list: %w", p.ID, err)
		}
		if err := addObject(lid); err != nil {
			return deletedAt, nil, fmt.Errorf("point %q: %w", p.ID, err)
		}
		err = readEntries(ctx, dw, lid, func(_ Entry, ref ObjectRef) error {
			oid, err := object.ParseID(ref.ID)
			if err != nil {
				return err
			}
			return addObject(oid)
		})
		if err != nil {
			return deletedAt, nil, fmt.Errorf("point %q: %w", p.ID, err)
		}
	}

	cm := dw.ContentManager()
	packs := map[blob.ID]*packUse{}
	err = dw.ContentReader().IterateContents(ctx, content.IterateOptions{IncludeDeleted: true}, func(ci content.Info) error {
		if ci.ContentID.Prefix() == manifest.ContentPrefix {
			return nil
		}
		_, live := used[ci.ContentID]
		pu := packs[ci.PackBlobID]
		if pu == nil {
			pu = &packUse{}
			packs[ci.PackBlobID] = pu
		}
		pu.total += int64(ci.PackedLength)
		if live {
			pu.live = append(pu.live, ci.ContentID)
			pu.liveBytes += int64(ci.PackedLength)
		}
		switch {
		case live && ci.Deleted:
			return cm.UndeleteContent(ctx, ci.ContentID)
		case !live && !ci.Deleted:
			// The stamp kopia will give the deletion (contentWriteTime).
			stamp := max(dw.Time().Unix(), ci.TimestampSeconds+1)
			if t := time.Unix(stamp, 0); t.After(deletedAt) {
				deletedAt = t
			}
			return cm.DeleteContent(ctx, ci.ContentID)
		}
		return nil
	})
	if err != nil {
		return deletedAt, nil, fmt.Errorf("sweep contents: %w", err)
	}
	if err := dw.Flush(ctx); err != nil {
		return deletedAt, nil, fmt.Errorf("sweep contents: %w", err)
	}

	// Kopia's maintenance rewrites only short packs, so a full pack that
	// is mostly garbage would stay forever. reclaim rewrites the live
	// contents of packs with much garbage: the old packs then hold nothing
	// an index refers to and maintenance deletes them.
	for _, pu := range packs {
		if len(pu.live) > 0 && pu.total-pu.liveBytes >= pu.total*compactDeadPercent/100 {
			rewrite = append(rewrite, pu.live...)
		}
	}
	return deletedAt, rewrite, nil
}

// compactDeadPercent is the share of garbage above which Collect rewrites a
// pack's live contents (costing up to 100-compactDeadPercent % of a pack in
// writes to reclaim the rest).
const compactDeadPercent = 25

type packUse struct {
	total, liveBytes int64
	live             []content.ID
}
