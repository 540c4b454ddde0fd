// Package replication is Bulwark's replication domain: the rules that say
// which object versions go to which destination bucket, and (in later
// changes) the workers that ship them and the retries that keep them going.
//
// The rule model follows S3's replication configuration: the legacy V1
// schema (a rule with a Prefix) and the V2 schema (a rule with a Filter,
// a Priority and an explicit DeleteMarkerReplication). A configuration is
// stored as the canonical JSON of Config; only the S3 wire package knows
// its XML form.
package replication

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Values of every Status element of a configuration.
const (
	Enabled  = "Enabled"
	Disabled = "Disabled"
)

// Limits S3 sets on a configuration.
const (
	MaxRules    = 1000
	MaxRuleID   = 255
	RTCMinutes  = 15 // the only ReplicationTime and EventThreshold S3 accepts
	bucketARN   = "arn:aws:s3:::"
	ownerTarget = "Destination" // the only AccessControlTranslation owner
)

// StorageClasses are the storage classes a destination may name.
var StorageClasses = []string{
	"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
	"GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
	"FSX_OPENZFS", "FSX_ONTAP",
}

// Config is a bucket's replication configuration.
type Config struct {
	// Role is the IAM role whose permissions the replication worker uses.
	Role  string `json:"role"`
	Rules []Rule `json:"rules"`
}

// Rule selects object versions and says where they go.
type Rule struct {
	ID       string `json:"id"`
	Priority *int   `json:"priority,omitempty"`
	// Prefix makes the rule a V1 rule; Filter makes it a V2 rule. A rule has
	// exactly one of them.
	Prefix                    *string                  `json:"prefix,omitempty"`
	Filter                    *Filter                  `json:"filter,omitempty"`
	Status                    string                   `json:"status"`
	SourceSelectionCriteria   *SourceSelectionCriteria `json:"sourceSelectionCriteria,omitempty"`
	ExistingObjectReplication *Toggle                  `json:"existingObjectReplication,omitempty"`
	Destination               Destination              `json:"destination"`
	DeleteMarkerReplication   *Toggle                  `json:"deleteMarkerReplication,omitempty"`
}

// Toggle is an element whose only content is a Status.
type Toggle struct {
	Status string `json:"status"`
}

// Filter is a V2 rule's filter: at most one of its fields is set, and an
// empty filter selects every object.
type Filter struct {
	Prefix *string `json:"prefix,omitempty"`
	Tag    *Tag    `json:"tag,omitempty"`
	And    *And    `json:"and,omitempty"`
}

// And combines a prefix and tags; an object must match all of them.
type And struct {
	Prefix *string `json:"prefix,omitempty"`
	Tags   []Tag   `json:"tags,omitempty"`
}

// Tag is an object tag a filter requires.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Destination is where a rule's versions go.
type Destination struct {
	// Bucket is the destination bucket's ARN, arn:aws:s3:::name.
	Bucket                   string                    `json:"bucket"`
	Account                  string                    `json:"account,omitempty"`
	StorageClass             string                    `json:"storageClass,omitempty"`
	AccessControlTranslation *AccessControlTranslation `json:"accessControlTranslation,omitempty"`
	EncryptionConfiguration  *EncryptionConfiguration  `json:"encryptionConfiguration,omitempty"`
	ReplicationTime          *ReplicationTime          `json:"replicationTime,omitempty"`
	Metrics                  *Metrics                  `json:"metrics,omitempty"`
}

// BucketName is the name of the destination bucket, "" when Bucket is not
// a bucket ARN.
func (d Destination) BucketName() string {
	name, ok := strings.CutPrefix(d.Bucket, bucketARN)
	if !ok || name == "" || strings.ContainsAny(name, "/:") {
		return ""
	}
	return name
}

// AccessControlTranslation makes the destination account the owner of
// replicas.
type AccessControlTranslation struct {
	Owner string `json:"owner"`
}

// EncryptionConfiguration names the key replicas of SSE-KMS objects are
// encrypted with.
type EncryptionConfiguration struct {
	ReplicaKmsKeyID string `json:"replicaKmsKeyId,omitempty"`
}

// ReplicationTime is Replication Time Control: a 15-minute target.
type ReplicationTime struct {
	Status string     `json:"status"`
	Time   *TimeValue `json:"time,omitempty"`
}

// Metrics enables replication metrics and the missed-threshold event.
type Metrics struct {
	Status         string     `json:"status"`
	EventThreshold *TimeValue `json:"eventThreshold,omitempty"`
}

// TimeValue is a duration in minutes.
type TimeValue struct {
	Minutes *int `json:"minutes,omitempty"`
}

// SourceSelectionCriteria selects replica modifications and SSE-KMS
// objects, which are not replicated unless asked for.
type SourceSelectionCriteria struct {
	SseKmsEncryptedObjects *Toggle `json:"sseKmsEncryptedObjects,omitempty"`
	ReplicaModifications   *Toggle `json:"replicaModifications,omitempty"`
}

// V2 reports whether the rule uses the V2 schema (a Filter).
func (r *Rule) V2() bool { return r.Filter != nil }

// hasTagFilter reports whether the rule's filter names any tag.
func (r *Rule) hasTagFilter() bool {
	f := r.Filter
	return f != nil && (f.Tag != nil || f.And != nil && len(f.And.Tags) > 0)
}

// priority is the rule's priority; V1 rules have none and rank as 0.
func (r *Rule) priority() int {
	if r.Priority == nil {
		return 0
	}
	return *r.Priority
}

// Encode returns the canonical JSON of a configuration, as stored.
func Encode(c *Config) ([]byte, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode replication configuration: %w", err)
	}
	return raw, nil
}

// Decode parses a stored configuration.
func Decode(raw []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode replication configuration: %w", err)
	}
	return &c, nil
}

// Matches reports whether a rule's prefix or filter selects an object with
// this key and these tags. It does not look at the rule's status.
func Matches(rule Rule, key string, tags map[string]string) bool {
	hasTag := func(t Tag) bool { v, ok := tags[t.Key]; return ok && v == t.Value }
	f := rule.Filter
	switch {
	case f == nil:
		return rule.Prefix == nil || strings.HasPrefix(key, *rule.Prefix)
	case f.Prefix != nil:
		return strings.HasPrefix(key, *f.Prefix)
	case f.Tag != nil:
		return hasTag(*f.Tag)
	case f.And != nil:
		if f.And.Prefix != nil && !strings.HasPrefix(key, *f.And.Prefix) {
			return false
		}
		for _, t := range f.And.Tags {
			if !hasTag(t) {
				return false
			}
		}
	}
	return true
}

// SelectRules returns the rules that replicate an object with this key and
// these tags, in configuration order: enabled rules whose filter matches,
// and of several such rules with the same destination bucket only the one
// with the highest priority (the first, on a tie), as S3 does.
func SelectRules(c *Config, key string, tags map[string]string) []Rule {
	best := map[string]int{} // destination bucket -> index in c.Rules
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Status != Enabled || !Matches(*r, key, tags) {
			continue
		}
		dest := r.Destination.BucketName()
		if j, ok := best[dest]; !ok || r.priority() > c.Rules[j].priority() {
			best[dest] = i
		}
	}
	idx := make([]int, 0, len(best))
	for _, i := range best {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]Rule, len(idx))
	for n, i := range idx {
		out[n] = c.Rules[i]
	}
	return out
}

// ReplicatesDeleteMarkers reports whether a rule replicates delete
// markers: V1 rules always do (S3's legacy behaviour); V2 rules only with
// DeleteMarkerReplication Enabled.
func ReplicatesDeleteMarkers(rule Rule) bool {
	if !rule.V2() {
		return true
	}
	return rule.DeleteMarkerReplication != nil && rule.DeleteMarkerReplication.Status == Enabled
}

// newRuleID returns an ID for a rule that has none, in the form S3 uses:
// a random UUID, base64-encoded.
func newRuleID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails, per crypto/rand
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	u := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	return base64.StdEncoding.EncodeToString([]byte(u))
}

// Selects reports whether a stored configuration selects a new object
// version with this key and these tags: the hook by which the object store
// marks such a version PENDING in the transaction that writes it.
func Selects(raw []byte, key string, tags map[string]string) bool {
	c, err := Decode(raw)
	return err == nil && len(SelectRules(c, key, tags)) > 0
}
