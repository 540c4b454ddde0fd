package replication

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// Kinds of difference Diff reports.
const (
	DiffMissing   = "MISSING"   // the version is not in the destination
	DiffDifferent = "DIFFERENT" // same version ID, different ETag or kind
	DiffExtra     = "EXTRA"     // a version only the destination has
)

// Difference is one version that is not where the rules say it should be.
type Difference struct {
	Kind        string `json:"kind"`
	Destination string `json:"destination"`
	Rule        string `json:"rule"`
	Key         string `json:"key"`
	VersionID   string `json:"versionId"`
	// SourceStatus is the source version's replication status: PENDING
	// means replication has not got to it yet.
	SourceStatus string `json:"sourceStatus,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

// DiffReport compares a bucket with its destinations.
type DiffReport struct {
	Bucket       string       `json:"bucket"`
	Compared     int          `json:"comparedVersions"`
	Destinations []string     `json:"destinations"`
	Differences  []Difference `json:"differences"`
}

// diffPage is how many versions a destination listing asks for at a time;
// diffBuffered is the most a listing has held at once, for tests.
var (
	diffPage     int32 = 1000
	diffBuffered atomic.Int64
)

type destVersion struct {
	key, versionID string
	etag           string
	deleteMarker   bool
}

// Diff lists, for every destination of bucket's rules, the versions the
// rules select that the destination lacks or holds differently, and the
// replicas there whose source version no longer exists. Versions written
// before the rules (status NONE) are compared too: they are what a batch
// job would send.
//
// The source's versions and each destination's listing are read page by
// page, both in key order, and joined one key at a time: memory holds a
// page of each side and the versions of one key, however large the
// buckets.
func (e *Engine) Diff(ctx context.Context, bucket string) (*DiffReport, error) {
	b, err := e.store.Bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if len(b.Replication) == 0 {
		return nil, fmt.Errorf("%w: bucket %s has no replication configuration", ErrInvalidJob, bucket)
	}
	cfg, err := Decode(b.Replication)
	if err != nil {
		return nil, err
	}
	rep := &DiffReport{Bucket: bucket, Differences: []Difference{}}
	dests := map[string]*destListing{}
	for _, r := range cfg.Rules {
		d := r.Destination.BucketName()
		if _, ok := dests[d]; ok || r.Status != Enabled {
			continue
		}
		l, err := e.listDestination(ctx, b.Owner, d)
		if err != nil {
			return nil, fmt.Errorf("list destination %s: %w", d, err)
		}
		dests[d] = l
		rep.Destinations = append(rep.Destinations, d)
	}
	job := &Job{ResyncRequest: ResyncRequest{Status: ResyncAll}}
	var group []*objectstore.Version // the versions of one key
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		err := e.diffKey(ctx, rep, job, cfg, dests, group)
		group = group[:0]
		return err
	}
	var cur objectstore.VersionCursor
	for more := true; more; {
		cur, more, err = e.store.WalkVersions(ctx, bucket, cur, 1000, func(v *objectstore.Version) error {
			if len(group) > 0 && group[0].Key != v.Key {
				if err := flush(); err != nil {
					return err
				}
			}
			rep.Compared++
			group = append(group, v)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for _, d := range rep.Destinations {
		// Keys after the source's last: only in the destination.
		extra, err := dests[d].before(ctx, "", true)
		if err != nil {
			return nil, fmt.Errorf("list destination %s: %w", d, err)
		}
		rep.Differences = appendExtra(rep.Differences, d, extra)
	}
	return rep, nil
}

// diffKey compares the versions of one source key with what each
// destination holds of that key.
func (e *Engine) diffKey(ctx context.Context, rep *DiffReport, job *Job, cfg *Config, dests map[string]*destListing, group []*objectstore.Version) error {
	key := group[0].Key
	held := map[string]map[string]destVersion{} // destination -> version ID -> version
	for _, d := range rep.Destinations {
		extra, err := dests[d].before(ctx, key, false)
		if err != nil {
			return fmt.Errorf("list destination %s: %w", d, err)
		}
		rep.Differences = appendExtra(rep.Differences, d, extra)
		at, err := dests[d].take(ctx, key)
		if err != nil {
			return fmt.Errorf("list destination %s: %w", d, err)
		}
		held[d] = map[string]destVersion{}
		for _, v := range at {
			held[d][v.versionID] = v
		}
	}
	atSource := map[string]bool{}
	for _, v := range group {
		atSource[v.VersionID] = true
		for _, r := range e.selection(job, cfg, v) {
			d := r.Destination.BucketName()
			got, ok := held[d][v.VersionID]
			diff := Difference{Destination: d, Rule: r.ID, Key: v.Key, VersionID: v.VersionID, SourceStatus: v.ReplicationStatus}
			switch {
			case !ok:
				diff.Kind = DiffMissing
			case got.deleteMarker != v.DeleteMarker:
				diff.Kind, diff.Detail = DiffDifferent, "delete marker on one side only"
			case !v.DeleteMarker && got.etag != v.ETag:
				diff.Kind, diff.Detail = DiffDifferent, fmt.Sprintf("ETag %s at the source, %s at the destination", v.ETag, got.etag)
			default:
				continue
			}
			rep.Differences = append(rep.Differences, diff)
		}
	}
	for _, d := range rep.Destinations {
		var extra []destVersion
		for id, v := range held[d] {
			// At the source too, just not selected by the rules: no
			// difference.
			if !atSource[id] {
				extra = append(extra, v)
			}
		}
		slices.SortFunc(extra, func(a, b destVersion) int { return strings.Compare(a.versionID, b.versionID) })
		rep.Differences = appendExtra(rep.Differences, d, extra)
	}
	return nil
}

func appendExtra(l []Difference, dest string, extra []destVersion) []Difference {
	for _, v := range extra {
		l = append(l, Difference{Kind: DiffExtra, Destination: dest, Key: v.key, VersionID: v.versionID,
			Detail: "only in the destination: written there directly, or its source version was deleted (a delete naming a version is never replicated)"})
	}
	return l
}

// destListing reads a destination bucket's versions a page at a time, in
// key order.
type destListing struct {
	pages *s3.ListObjectVersionsPaginator
	buf   []destVersion // read and not yet taken, in key order
}

// fill reads pages until the buffer holds a key other than key, or the
// listing ends.
func (l *destListing) fill(ctx context.Context, key string) error {
	for l.pages.HasMorePages() && (len(l.buf) == 0 || l.buf[len(l.buf)-1].key <= key) {
		page, err := l.pages.NextPage(ctx)
		if err != nil {
			return err
		}
		var got []destVersion
		for _, v := range page.Versions {
			got = append(got, destVersion{key: aws.ToString(v.Key), versionID: aws.ToString(v.VersionId), etag: strings.Trim(aws.ToString(v.ETag), `"`)})
		}
		for _, m := range page.DeleteMarkers {
			got = append(got, destVersion{key: aws.ToString(m.Key), versionID: aws.ToString(m.VersionId), deleteMarker: true})
		}
		// A page lists versions and delete markers apart, each in key
		// order; pages follow each other in key order.
		slices.SortStableFunc(got, func(a, b destVersion) int { return strings.Compare(a.key, b.key) })
		l.buf = append(l.buf, got...)
		for n := int64(len(l.buf)); n > diffBuffered.Load(); {
			if diffBuffered.CompareAndSwap(diffBuffered.Load(), n) {
				break
			}
		}
	}
	return nil
}

// before takes the versions of keys before key (every one left when all
// is set).
func (l *destListing) before(ctx context.Context, key string, all bool) ([]destVersion, error) {
	var out []destVersion
	for {
		if err := l.fill(ctx, key); err != nil {
			return nil, err
		}
		i := 0
		for i < len(l.buf) && (all || l.buf[i].key < key) {
			i++
		}
		out = append(out, l.buf[:i]...)
		l.buf = slices.Delete(l.buf, 0, i)
		if len(l.buf) > 0 || !l.pages.HasMorePages() {
			return out, nil
		}
	}
}

// take takes the versions of key, which must not be before any key left.
func (l *destListing) take(ctx context.Context, key string) ([]destVersion, error) {
	if err := l.fill(ctx, key); err != nil {
		return nil, err
	}
	i := 0
	for i < len(l.buf) && l.buf[i].key == key {
		i++
	}
	out := slices.Clone(l.buf[:i])
	l.buf = slices.Delete(l.buf, 0, i)
	return out, nil
}

// listDestination opens the listing of every version of a destination
// bucket through its region's S3 endpoint, acting for the source bucket's
// owner.
func (e *Engine) listDestination(ctx context.Context, owner, bucket string) (*destListing, error) {
	endpoint, region, err := e.cfg.Locate(ctx, bucket)
	if err != nil {
		return nil, err
	}
	ak, sk, ok := e.cfg.Credentials(owner)
	if !ok {
		return nil, fmt.Errorf("no credentials to act for account %s", owner)
	}
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""),
		HTTPClient:  e.cfg.HTTPClient,
	})
	return &destListing{pages: s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), MaxKeys: aws.Int32(diffPage)})}, nil
}
