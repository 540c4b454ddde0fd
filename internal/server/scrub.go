package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/scrub"
)

// The scrubber (package scrub) checks a region's stored data; this file
// gives it its sources of good copies and its API:
//
//   - replicas: a version with the same version ID and ETag in a bucket
//     that replicates with the damaged one, in this region or another,
//     fetched from the other regions over the peer API;
//   - backups: the newest recovery point of the bucket that holds the
//     version, when the pass asks for it;
//   - POST /_bulwark/v1/scrub starts a pass of the region answering,
//     GET /_bulwark/v1/scrub shows it: the deployment's admin account's,
//     as the pass reads every account's data (bulwark:StartScrub,
//     bulwark:GetScrubStatus).
const (
	scrubPath          = adminPrefix + "v1/scrub"
	scrubCopyPath      = adminPrefix + "v1/scrub/copy"
	actionStartScrub   = "bulwark:StartScrub"
	actionGetScrub     = "bulwark:GetScrubStatus"
	maxScrubRequest    = 4 << 10
	scrubStateFileName = "scrub.json"
)

// scrubStartRequest is the body of POST /_bulwark/v1/scrub.
type scrubStartRequest struct {
	Bucket           string `json:"bucket,omitempty"`
	RepairFromBackup bool   `json:"repairFromBackup,omitempty"`
}

// scrubStatusResponse answers GET /_bulwark/v1/scrub.
type scrubStatusResponse struct {
	Region string `json:"region"`
	scrub.Status
}

// newScrubber makes the region's scrubber, with its sources.
func (r *Region) newScrubber() *scrub.Scrubber {
	return scrub.New(scrub.Config{
		Store: r.Store, Replicas: replicaSource{r}, Backups: backupSource{r},
		Rate: r.cfg.ScrubRate, Interval: r.cfg.ScrubInterval,
		StatePath: r.cfg.DataDir + "/" + scrubStateFileName,
		Logger:    r.log, Registry: r.Registry,
	})
}

// scrubRoutes are the scrub calls: the admin's, and the peer call that
// hands another region a good copy of a version.
func (r *Region) scrubRoutes() []adminRoute {
	return []adminRoute{
		{"POST " + scrubPath, checked, []string{actionStartScrub}, r.startScrub},
		{"GET " + scrubPath, checked, []string{actionGetScrub}, r.scrubStatus},
		{"GET " + scrubCopyPath, peersOnly, nil, r.serveScrubCopy},
	}
}

func (r *Region) startScrub(w http.ResponseWriter, req *http.Request) {
	if !r.adminOnly(w, req, actionStartScrub, "a scrub") {
		return
	}
	body, ok := readBody(w, req, maxScrubRequest, "scrub request")
	if !ok {
		return
	}
	var in scrubStartRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("malformed scrub request: %v", err))
			return
		}
	}
	if in.Bucket != "" {
		if _, err := r.Store.Bucket(req.Context(), in.Bucket); err != nil {
			writeJSONError(w, http.StatusNotFound, "NoSuchBucket", fmt.Sprintf("bucket %s is not homed in region %s: scrub it through its home region's endpoint", in.Bucket, r.cfg.Region))
			return
		}
	}
	p, err := r.Scrub.Start(scrub.Options{Bucket: in.Bucket, RepairFromBackup: in.RepairFromBackup})
	switch {
	case errors.Is(err, scrub.ErrRunning):
		writeJSONError(w, http.StatusConflict, "ScrubRunning", "a scrub pass is running in region "+r.cfg.Region+"; follow it with GET "+scrubPath)
	case err != nil:
		writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable", err.Error())
	default:
		writeJSON(w, http.StatusAccepted, scrubStatusResponse{Region: r.cfg.Region, Status: scrub.Status{Current: p}})
	}
}

func (r *Region) scrubStatus(w http.ResponseWriter, req *http.Request) {
	if !r.adminOnly(w, req, actionGetScrub, "a scrub") {
		return
	}
	writeJSON(w, http.StatusOK, scrubStatusResponse{Region: r.cfg.Region, Status: r.Scrub.Status()})
}

// serveScrubCopy hands a peer the data of one piece of a version it found
// damaged, from a bucket here that replicates with the damaged one: one of
// the candidates the peer names (its bucket's destinations), or a bucket
// whose rules replicate into the damaged bucket. 404 when there is none.
func (r *Region) serveScrubCopy(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	part, err := strconv.Atoi(q.Get("part"))
	if err != nil || part < 0 {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", "part must be a number")
		return
	}
	ctx := req.Context()
	cands, err := r.replicationPartners(ctx, q.Get("bucket"), q["candidate"])
	if err != nil {
		r.log.Error("scrub copy: find buckets", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError", "find buckets")
		return
	}
	rc, from, err := r.localCopy(ctx, cands, q.Get("key"), q.Get("versionId"), q.Get("etag"), part)
	if err != nil {
		writeJSONError(w, http.StatusNotFound, "NoSuchVersion", err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Bulwark-Copy-From", from)
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rc)
}

// replicationPartners lists the buckets of this region that may hold a
// replica of bucket's versions: those named (its rules' destinations,
// which its region knows) that are here, and those whose rules replicate
// into bucket.
func (r *Region) replicationPartners(ctx context.Context, bucket string, named []string) ([]string, error) {
	all, err := r.Store.AllBuckets(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range all {
		if b.Name == bucket {
			continue
		}
		if slices.Contains(named, b.Name) {
			out = append(out, b.Name)
			continue
		}
		if cfg, err := replication.Decode(b.Replication); err == nil && len(b.Replication) > 0 {
			for _, rule := range cfg.Rules {
				if rule.Destination.BucketName() == bucket {
					out = append(out, b.Name)
					break
				}
			}
		}
	}
	return out, nil
}

// localCopy opens piece part of the version (key, versionID) with etag in
// the first of buckets that holds it sound.
func (r *Region) localCopy(ctx context.Context, buckets []string, key, versionID, etag string, part int) (io.ReadCloser, string, error) {
	for _, b := range buckets {
		v, err := r.Store.VersionRecord(ctx, b, key, versionID)
		if err != nil || v.ETag != etag || v.Damaged != "" || !v.HasData() {
			continue
		}
		rc, err := r.Store.PieceReader(ctx, v, part)
		if err != nil {
			continue
		}
		return rc, fmt.Sprintf("replica in bucket %s of region %s", b, r.cfg.Region), nil
	}
	return nil, "", fmt.Errorf("%w: no bucket of region %s that replicates with it holds %s version %s", scrub.ErrNoCopy, r.cfg.Region, key, versionID)
}

// replicaSource finds a good copy of a version among the buckets that
// replicate with its bucket, in every region.
type replicaSource struct{ r *Region }

func (s replicaSource) Fetch(ctx context.Context, v *objectstore.Version, part int) (io.ReadCloser, string, error) {
	r := s.r
	var named []string
	if b, err := r.Store.Bucket(ctx, v.Bucket); err == nil && len(b.Replication) > 0 {
		if cfg, err := replication.Decode(b.Replication); err == nil {
			for _, rule := range cfg.Rules {
				named = append(named, rule.Destination.BucketName())
			}
		}
	}
	cands, err := r.replicationPartners(ctx, v.Bucket, named)
	if err != nil {
		return nil, "", err
	}
	if rc, from, err := r.localCopy(ctx, cands, v.Key, v.VersionID, v.ETag, part); err == nil {
		return rc, from, nil
	}
	var reasons []string
	p := r.peers()
	for _, peer := range p.others() {
		if p.client == nil {
			break
		}
		q := url.Values{"bucket": {v.Bucket}, "key": {v.Key}, "versionId": {v.VersionID}, "etag": {v.ETag}, "part": {strconv.Itoa(part)}, "candidate": named}
		resp, err := p.client.DoData(ctx, peer, http.MethodGet, scrubCopyPath+"?"+q.Encode(), nil)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("region %s: %v", peer, err))
			continue
		}
		if resp.StatusCode == http.StatusOK {
			return resp.Body, resp.Header.Get("X-Bulwark-Copy-From"), nil
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		reasons = append(reasons, fmt.Sprintf("region %s: %s", peer, strings.TrimSpace(string(msg))))
	}
	return nil, "", fmt.Errorf("%w: no replica in any region (%s)", scrub.ErrNoCopy, strings.Join(reasons, "; "))
}

// backupSource finds a version in the newest recovery point of its bucket
// that holds it.
type backupSource struct{ r *Region }

func (s backupSource) Fetch(ctx context.Context, v *objectstore.Version, part int) (io.ReadCloser, string, error) {
	b, err := s.r.Store.Bucket(ctx, v.Bucket)
	if err != nil {
		return nil, "", err
	}
	rc, point, err := s.r.Jobs.OpenBackedUpObject(ctx, b.Owner, backup.BucketARN(v.Bucket), v.Key, v.VersionID, v.ETag)
	if errors.Is(err, backup.ErrNotBackedUp) {
		return nil, "", fmt.Errorf("%w: %v", scrub.ErrNoCopy, err)
	}
	if err != nil {
		return nil, "", err
	}
	// A recovery point holds the whole object: a part is its stretch.
	var off, size int64 = 0, v.Size
	for _, p := range v.Parts {
		if p.Number == part {
			size = p.Size
			break
		}
		off += p.Size
	}
	if _, err := rc.Seek(off, io.SeekStart); err != nil {
		rc.Close()
		return nil, "", err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, size), rc}, "recovery point " + point, nil
}
