package s3api

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
)

// Bucket replication configuration: S3's XML, translated to and from the
// replication package's model, which is what the bucket record keeps.
// Elements keep their presence across the round trip (an empty V1 Prefix
// comes back as an empty Prefix), so GetBucketReplication returns what
// S3 would.

type replicationConfiguration struct {
	XMLName xml.Name          `xml:"ReplicationConfiguration"`
	NS      string            `xml:"xmlns,attr,omitempty"`
	Role    string            `xml:"Role"`
	Rules   []replicationRule `xml:"Rule"`
}

type replicationRule struct {
	ID                        string                      `xml:"ID,omitempty"`
	Priority                  *int                        `xml:"Priority,omitempty"`
	Prefix                    *string                     `xml:"Prefix,omitempty"`
	Filter                    *replicationFilter          `xml:"Filter,omitempty"`
	Status                    string                      `xml:"Status"`
	SourceSelectionCriteria   *replicationSourceSelection `xml:"SourceSelectionCriteria,omitempty"`
	ExistingObjectReplication *replicationStatus          `xml:"ExistingObjectReplication,omitempty"`
	Destination               replicationDestination      `xml:"Destination"`
	DeleteMarkerReplication   *replicationStatus          `xml:"DeleteMarkerReplication,omitempty"`
}

type replicationStatus struct {
	Status string `xml:"Status,omitempty"`
}

type replicationTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type replicationFilter struct {
	Prefix *string         `xml:"Prefix,omitempty"`
	Tag    *replicationTag `xml:"Tag,omitempty"`
	And    *replicationAnd `xml:"And,omitempty"`
}

type replicationAnd struct {
	Prefix *string          `xml:"Prefix,omitempty"`
	Tags   []replicationTag `xml:"Tag"`
}

type replicationDestination struct {
	Bucket                   string                 `xml:"Bucket"`
	Account                  string                 `xml:"Account,omitempty"`
	StorageClass             string                 `xml:"StorageClass,omitempty"`
	AccessControlTranslation *replicationACT        `xml:"AccessControlTranslation,omitempty"`
	EncryptionConfiguration  *replicationEncryption `xml:"EncryptionConfiguration,omitempty"`
	ReplicationTime          *replicationTime       `xml:"ReplicationTime,omitempty"`
	Metrics                  *replicationMetrics    `xml:"Metrics,omitempty"`
}

type replicationACT struct {
	Owner string `xml:"Owner"`
}

type replicationEncryption struct {
	ReplicaKmsKeyID string `xml:"ReplicaKmsKeyID,omitempty"`
}

type replicationTime struct {
	Status string            `xml:"Status"`
	Time   *replicationValue `xml:"Time,omitempty"`
}

type replicationMetrics struct {
	Status         string            `xml:"Status"`
	EventThreshold *replicationValue `xml:"EventThreshold,omitempty"`
}

type replicationValue struct {
	Minutes *int `xml:"Minutes,omitempty"`
}

type replicationSourceSelection struct {
	SseKmsEncryptedObjects *replicationStatus `xml:"SseKmsEncryptedObjects,omitempty"`
	ReplicaModifications   *replicationStatus `xml:"ReplicaModifications,omitempty"`
}

// putBucketReplication validates the configuration against the bucket,
// its destinations and S3's rules, then stores it.
func (h *Handler) putBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	src, err := h.store.Bucket(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	var doc replicationConfiguration
	if err := decodeVerifiedXML(r, rq, &doc, maxXMLBody); err != nil {
		return err
	}
	cfg := doc.toDomain()
	// Destinations are looked up in every region of the deployment.
	lookup := func(name string) (replication.BucketInfo, error) {
		b, err := h.lookup(r.Context(), name)
		if errors.Is(err, objectstore.ErrNoSuchBucket) {
			return replication.BucketInfo{}, fmt.Errorf("%w: %s", replication.ErrBucketNotFound, name)
		}
		if err != nil {
			return replication.BucketInfo{}, err
		}
		return replication.BucketInfo{Name: b.Name, Versioning: b.Versioning}, nil
	}
	if err := replication.Validate(cfg, replication.BucketInfo{Name: src.Name, Versioning: src.Versioning}, lookup); err != nil {
		return err
	}
	raw, err := replication.Encode(cfg)
	if err != nil {
		return err
	}
	if err := h.store.SetBucketReplication(r.Context(), rq.bucket, raw); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (h *Handler) getBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	raw, err := h.store.BucketReplication(r.Context(), rq.bucket)
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		e := *errNoSuchReplicationConfiguration
		e.Extra = []xmlField{{XMLName: xml.Name{Local: "BucketName"}, Value: rq.bucket}}
		return &e
	}
	cfg, err := replication.Decode(raw)
	if err != nil {
		return fmt.Errorf("bucket %q: %w", rq.bucket, err)
	}
	doc := replicationFromDomain(cfg)
	doc.NS = xmlNS
	writeXML(w, http.StatusOK, doc)
	return nil
}

// deleteBucketReplication succeeds whether or not there is a
// configuration, as in S3.
func (h *Handler) deleteBucketReplication(w http.ResponseWriter, r *http.Request, rq *request) error {
	if err := h.store.SetBucketReplication(r.Context(), rq.bucket, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (d *replicationConfiguration) toDomain() *replication.Config {
	c := &replication.Config{Role: d.Role, Rules: make([]replication.Rule, len(d.Rules))}
	for i, r := range d.Rules {
		rule := replication.Rule{
			ID: r.ID, Priority: r.Priority, Prefix: r.Prefix, Status: r.Status,
			ExistingObjectReplication: r.ExistingObjectReplication.toDomain(),
			DeleteMarkerReplication:   r.DeleteMarkerReplication.toDomain(),
		}
		if f := r.Filter; f != nil {
			rule.Filter = &replication.Filter{Prefix: f.Prefix}
			if f.Tag != nil {
				rule.Filter.Tag = &replication.Tag{Key: f.Tag.Key, Value: f.Tag.Value}
			}
			if f.And != nil {
				rule.Filter.And = &replication.And{Prefix: f.And.Prefix}
				for _, t := range f.And.Tags {
					rule.Filter.And.Tags = append(rule.Filter.And.Tags, replication.Tag{Key: t.Key, Value: t.Value})
				}
			}
		}
		if s := r.SourceSelectionCriteria; s != nil {
			rule.SourceSelectionCriteria = &replication.SourceSelectionCriteria{
				SseKmsEncryptedObjects: s.SseKmsEncryptedObjects.toDomain(),
				ReplicaModifications:   s.ReplicaModifications.toDomain(),
			}
		}
		d := r.Destination
		rule.Destination = replication.Destination{Bucket: d.Bucket, Account: d.Account, StorageClass: d.StorageClass}
		if d.AccessControlTranslation != nil {
			rule.Destination.AccessControlTranslation = &replication.AccessControlTranslation{Owner: d.AccessControlTranslation.Owner}
		}
		if d.EncryptionConfiguration != nil {
			rule.Destination.EncryptionConfiguration = &replication.EncryptionConfiguration{ReplicaKmsKeyID: d.EncryptionConfiguration.ReplicaKmsKeyID}
		}
		if t := d.ReplicationTime; t != nil {
			rule.Destination.ReplicationTime = &replication.ReplicationTime{Status: t.Status, Time: t.Time.toDomain()}
		}
		if m := d.Metrics; m != nil {
			rule.Destination.Metrics = &replication.Metrics{Status: m.Status, EventThreshold: m.EventThreshold.toDomain()}
		}
		c.Rules[i] = rule
	}
	return c
}

func replicationFromDomain(c *replication.Config) *replicationConfiguration {
	d := &replicationConfiguration{Role: c.Role, Rules: make([]replicationRule, len(c.Rules))}
	for i, r := range c.Rules {
		rule := replicationRule{
			ID: r.ID, Priority: r.Priority, Prefix: r.Prefix, Status: r.Status,
			ExistingObjectReplication: statusFromDomain(r.ExistingObjectReplication),
			DeleteMarkerReplication:   statusFromDomain(r.DeleteMarkerReplication),
		}
		if f := r.Filter; f != nil {
			rule.Filter = &replicationFilter{Prefix: f.Prefix}
			if f.Tag != nil {
				rule.Filter.Tag = &replicationTag{Key: f.Tag.Key, Value: f.Tag.Value}
			}
			if f.And != nil {
				rule.Filter.And = &replicationAnd{Prefix: f.And.Prefix}
				for _, t := range f.And.Tags {
					rule.Filter.And.Tags = append(rule.Filter.And.Tags, replicationTag{Key: t.Key, Value: t.Value})
				}
			}
		}
		if s := r.SourceSelectionCriteria; s != nil {
			rule.SourceSelectionCriteria = &replicationSourceSelection{
				SseKmsEncryptedObjects: statusFromDomain(s.SseKmsEncryptedObjects),
				ReplicaModifications:   statusFromDomain(s.ReplicaModifications),
			}
		}
		dst := r.Destination
		rule.Destination = replicationDestination{Bucket: dst.Bucket, Account: dst.Account, StorageClass: dst.StorageClass}
		if dst.AccessControlTranslation != nil {
			rule.Destination.AccessControlTranslation = &replicationACT{Owner: dst.AccessControlTranslation.Owner}
		}
		if dst.EncryptionConfiguration != nil {
			rule.Destination.EncryptionConfiguration = &replicationEncryption{ReplicaKmsKeyID: dst.EncryptionConfiguration.ReplicaKmsKeyID}
		}
		if t := dst.ReplicationTime; t != nil {
			rule.Destination.ReplicationTime = &replicationTime{Status: t.Status, Time: valueFromDomain(t.Time)}
		}
		if m := dst.Metrics; m != nil {
			rule.Destination.Metrics = &replicationMetrics{Status: m.Status, EventThreshold: valueFromDomain(m.EventThreshold)}
		}
		d.Rules[i] = rule
	}
	return d
}

func (s *replicationStatus) toDomain() *replication.Toggle {
	if s == nil {
		return nil
	}
	return &replication.Toggle{Status: s.Status}
}

func statusFromDomain(t *replication.Toggle) *replicationStatus {
	if t == nil {
		return nil
	}
	return &replicationStatus{Status: t.Status}
}

func (v *replicationValue) toDomain() *replication.TimeValue {
	if v == nil {
		return nil
	}
	return &replication.TimeValue{Minutes: v.Minutes}
}

func valueFromDomain(v *replication.TimeValue) *replicationValue {
	if v == nil {
		return nil
	}
	return &replicationValue{Minutes: v.Minutes}
}
