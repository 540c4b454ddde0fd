package s3api

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// maxXMLBody bounds request bodies of configuration calls; S3's own largest
// (a replication configuration) is far smaller.
const maxXMLBody = 1 << 20

// decodeXMLBody reads a bounded XML body into v. An empty body is allowed
// when optional, and leaves v untouched.
func decodeXMLBody(r *http.Request, v any, optional bool) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(data) > maxXMLBody {
		return errf("MalformedXML", 400, "The XML you provided was larger than the maximum of %d bytes", maxXMLBody)
	}
	if len(data) == 0 {
		if optional {
			return nil
		}
		return apiErr("MissingRequestBodyError", 400, "Request Body is empty")
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return errMalformedXML
	}
	return nil
}

type createBucketConfiguration struct {
	XMLName            xml.Name `xml:"CreateBucketConfiguration"`
	LocationConstraint string   `xml:"LocationConstraint"`
}

// createBucket places the bucket in the endpoint's region. Without a
// LocationConstraint the bucket goes to the region the endpoint serves
// (where S3 would assume us-east-1): with one endpoint per region, the
// endpoint already says where the user wants it.
func (h *Handler) createBucket(w http.ResponseWriter, r *http.Request, rq *request) error {
	var cfg createBucketConfiguration
	if err := decodeXMLBody(r, &cfg, true); err != nil {
		return err
	}
	region := cfg.LocationConstraint
	if region == "" {
		region = h.store.Region()
	}
	if region == "EU" {
		region = "eu-west-1"
	}
	if err := objectstore.ValidateBucketName(rq.bucket); err != nil {
		return err
	}
	// New buckets are bucket-owner-enforced, as on AWS since 2023: an ACL
	// granting anything beyond the owner is refused.
	if acl := r.Header.Get("x-amz-acl"); grantHeaders(r) || acl != "" && acl != "private" {
		return apiErr("InvalidBucketAclWithObjectOwnership", 400, "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")
	}
	err := h.store.CreateBucket(r.Context(), rq.bucket, rq.principal.AccountID, region)
	if errors.Is(err, objectstore.ErrWrongRegion) {
		return errf("IllegalLocationConstraintException", 400,
			"The %s location constraint is incompatible for the region specific endpoint this request was sent to.", region)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/"+rq.bucket)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) headBucket(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	w.Header().Set("x-amz-bucket-region", b.Region)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) deleteBucket(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.DeleteBucket(r.Context(), rq.bucket); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName,omitempty"`
}

type listAllMyBucketsResult struct {
	XMLName           xml.Name     `xml:"ListAllMyBucketsResult"`
	NS                string       `xml:"xmlns,attr"`
	Owner             owner        `xml:"Owner"`
	Buckets           []bucketInfo `xml:"Buckets>Bucket"`
	ContinuationToken string       `xml:"ContinuationToken,omitempty"`
	Prefix            string       `xml:"Prefix,omitempty"`
}

type bucketInfo struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion"`
}

func (h *Handler) listBuckets(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := rq.query
	prefix, region, after := q.Get("prefix"), q.Get("bucket-region"), q.Get("continuation-token")
	max := 10000
	if s := q.Get("max-buckets"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return apiErr("InvalidArgument", 400, "max-buckets must be an integer between 1 and 10000")
		}
		max = n
	}
	buckets, err := h.store.ListBuckets(r.Context(), rq.principal.AccountID)
	if err != nil {
		return err
	}
	res := listAllMyBucketsResult{NS: xmlNS, Owner: owner{ID: rq.principal.AccountID, DisplayName: rq.principal.AccountID}, Prefix: prefix}
	for _, b := range buckets {
		if b.Name <= after || len(b.Name) < len(prefix) || b.Name[:len(prefix)] != prefix || (region != "" && b.Region != region) {
			continue
		}
		if len(res.Buckets) == max {
			res.ContinuationToken = res.Buckets[len(res.Buckets)-1].Name
			break
		}
		res.Buckets = append(res.Buckets, bucketInfo{Name: b.Name, CreationDate: xmlTime(b.Created), BucketRegion: b.Region})
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

type locationConstraint struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	NS      string   `xml:"xmlns,attr"`
	Region  string   `xml:",chardata"`
}

func (h *Handler) getBucketLocation(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	region := b.Region
	if region == "us-east-1" { // S3 reports us-east-1 as an empty constraint
		region = ""
	}
	writeXML(w, http.StatusOK, locationConstraint{NS: xmlNS, Region: region})
	return nil
}

type versioningConfiguration struct {
	XMLName   xml.Name `xml:"VersioningConfiguration"`
	NS        string   `xml:"xmlns,attr,omitempty"`
	Status    string   `xml:"Status,omitempty"`
	MfaDelete string   `xml:"MfaDelete,omitempty"`
}

func (h *Handler) putBucketVersioning(w http.ResponseWriter, r *http.Request, rq *request) error {
	var cfg versioningConfiguration
	if err := decodeXMLBody(r, &cfg, false); err != nil {
		return err
	}
	switch cfg.MfaDelete {
	case "", "Disabled":
	case "Enabled":
		return apiErr("InvalidArgument", 400, "MFA delete is not supported by this endpoint; set MfaDelete to Disabled or leave it out")
	default:
		return errMalformedXML
	}
	if r.Header.Get("x-amz-mfa") != "" {
		return apiErr("InvalidArgument", 400, "MFA delete is not supported by this endpoint")
	}
	if cfg.Status != objectstore.VersioningEnabled && cfg.Status != objectstore.VersioningSuspended {
		return errMalformedXML
	}
	if err := h.store.SetVersioning(r.Context(), rq.bucket, cfg.Status); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) getBucketVersioning(w http.ResponseWriter, r *http.Request, rq *request) error {
	b, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	writeXML(w, http.StatusOK, versioningConfiguration{NS: xmlNS, Status: b.Versioning})
	return nil
}

// xmlTime formats a time as S3 does in XML bodies.
func xmlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
