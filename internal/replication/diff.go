package replication

import (
	"context"
	"fmt"
	"strings"

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

type destVersion struct {
	etag         string
	deleteMarker bool
}

// Diff lists, for every destination of bucket's rules, the versions the
// rules select that the destination lacks or holds differently, and the
// replicas there whose source version no longer exists. Versions written
// before the rules (status NONE) are compared too: they are what a batch
// job would send.
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
	dests := map[string]map[string]destVersion{} // destination -> key\0version -> version
	for _, r := range cfg.Rules {
		d := r.Destination.BucketName()
		if _, ok := dests[d]; ok || r.Status != Enabled {
			continue
		}
		listing, err := e.listDestination(ctx, b.Owner, d)
		if err != nil {
			return nil, fmt.Errorf("list destination %s: %w", d, err)
		}
		dests[d] = listing
		rep.Destinations = append(rep.Destinations, d)
	}
	seen := map[string]bool{}
	job := &Job{ResyncRequest: ResyncRequest{Status: ResyncAll}}
	var cur objectstore.VersionCursor
	for more := true; more; {
		cur, more, err = e.store.WalkVersions(ctx, bucket, cur, 1000, func(v *objectstore.Version) error {
			rep.Compared++
			for _, r := range e.selection(job, cfg, v) {
				d := r.Destination.BucketName()
				id := v.Key + "\x00" + v.VersionID
				seen[d+"\x00"+id] = true
				got, ok := dests[d][id]
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
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, d := range rep.Destinations {
		for id := range dests[d] {
			if seen[d+"\x00"+id] {
				continue
			}
			key, vid, _ := strings.Cut(id, "\x00")
			if _, err := e.store.Version(ctx, bucket, key, vid); err == nil {
				continue // at the source too, just not selected by the rules
			}
			rep.Differences = append(rep.Differences, Difference{Kind: DiffExtra, Destination: d, Key: key, VersionID: vid,
				Detail: "only in the destination: written there directly, or its source version was deleted (a delete naming a version is never replicated)"})
		}
	}
	return rep, nil
}

// listDestination lists every version of a destination bucket through its
// region's S3 endpoint, acting for the source bucket's owner.
func (e *Engine) listDestination(ctx context.Context, owner, bucket string) (map[string]destVersion, error) {
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
	out := map[string]destVersion{}
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			out[aws.ToString(v.Key)+"\x00"+aws.ToString(v.VersionId)] = destVersion{etag: strings.Trim(aws.ToString(v.ETag), `"`)}
		}
		for _, m := range page.DeleteMarkers {
			out[aws.ToString(m.Key)+"\x00"+aws.ToString(m.VersionId)] = destVersion{deleteMarker: true}
		}
	}
	return out, nil
}
