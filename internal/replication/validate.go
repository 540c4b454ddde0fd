package replication

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Rules a configuration can break. Validate returns a *ConfigError that
// wraps one of them; the S3 wire maps each to its error code, and shows the
// ConfigError's text, which is S3's wording.
var (
	// ErrMalformed is a configuration that breaks S3's schema: a missing
	// required element, a value outside an enumeration, too many rules.
	ErrMalformed                       = errors.New("malformed replication configuration")
	ErrRuleIDTooLong                   = errors.New("rule ID too long")
	ErrDuplicateRuleID                 = errors.New("duplicate rule ID")
	ErrMixedSchema                     = errors.New("V1 and V2 rules mixed")
	ErrPriorityRequired                = errors.New("V2 rule without priority")
	ErrDuplicatePriority               = errors.New("duplicate rule priority")
	ErrNegativePriority                = errors.New("negative rule priority")
	ErrDeleteMarkerReplicationRequired = errors.New("V2 rule without DeleteMarkerReplication")
	ErrDeleteMarkerReplicationWithTags = errors.New("delete marker replication with a tag filter")
	ErrInvalidDestination              = errors.New("invalid destination bucket ARN")
	ErrSameBucket                      = errors.New("destination is the source bucket")
	ErrInvalidAccount                  = errors.New("invalid destination account")
	ErrInvalidRole                     = errors.New("invalid role ARN")
	ErrReplicationTime                 = errors.New("invalid replication time or metrics")
	ErrEncryption                      = errors.New("invalid SSE-KMS replication settings")
	ErrSourceNotVersioned              = errors.New("source bucket versioning not enabled")
	ErrDestinationNotFound             = errors.New("destination bucket does not exist")
	ErrDestinationNotVersioned         = errors.New("destination bucket versioning not enabled")

	// ErrBucketNotFound is what a lookup function returns (wrapped or not)
	// for a bucket that does not exist.
	ErrBucketNotFound = errors.New("bucket not found")
)

// ConfigError is a configuration Validate refuses.
type ConfigError struct {
	Err     error  // one of the Err values above
	Message string // what the client is told
}

func (e *ConfigError) Error() string { return e.Message }
func (e *ConfigError) Unwrap() error { return e.Err }

func refuse(err error, format string, args ...any) error {
	return &ConfigError{Err: err, Message: fmt.Sprintf(format, args...)}
}

// S3's wording of the refusals whose text clients and tools match on.
const (
	msgSourceNotVersioned      = "Versioning must be 'Enabled' on the bucket to apply a replication configuration"
	msgDestinationNotFound     = "Destination bucket must exist."
	msgDestinationNotVersioned = "Destination bucket must have versioning enabled."
	msgPriorityRequired        = "Priority must be specified for this version of Cross Region Replication configuration schema. Please refer to S3 Developer Guide for more information."
	msgDeleteMarkerRequired    = "DeleteMarkerReplication must be specified for this version of Cross Region Replication configuration schema. Please refer to S3 Developer Guide for more information."
	msgDeleteMarkerWithTags    = "Delete marker replication is not supported if any Tag filter is specified. Please refer to S3 Developer Guide for more information."
)

// BucketInfo is what validation needs to know of a bucket.
type BucketInfo struct {
	Name       string
	Versioning string // "", Enabled or Suspended
}

// Validate applies S3's rules to a configuration for the bucket src.
// lookup resolves a destination bucket by name and returns an error
// wrapping ErrBucketNotFound when there is none; any other error it
// returns is passed on as is. Validate gives rules without an ID one, as S3
// does, and otherwise leaves c unchanged.
func Validate(c *Config, src BucketInfo, lookup func(bucket string) (BucketInfo, error)) error {
	if err := validateSchema(c); err != nil {
		return err
	}
	v1, v2 := 0, 0
	for i := range c.Rules {
		if c.Rules[i].V2() {
			v2++
		} else {
			v1++
		}
	}
	if v1 > 0 && v2 > 0 {
		return refuse(ErrMixedSchema, "A replication configuration cannot mix rules with a Prefix and rules with a Filter.")
	}
	ids := map[string]bool{}
	priorities := map[int]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		// S3 reads a priority as an integer and ranks rules by it, higher
		// first; below zero it is refused as an argument out of range, the
		// way S3 refuses the negative counts of its other configurations.
		if r.Priority != nil && *r.Priority < 0 {
			return refuse(ErrNegativePriority, "Priority must be a non-negative integer.")
		}
		if len([]rune(r.ID)) > MaxRuleID {
			return refuse(ErrRuleIDTooLong, "ID length should not exceed allowed limit of %d", MaxRuleID)
		}
		if r.ID != "" {
			if ids[r.ID] {
				return refuse(ErrDuplicateRuleID, "Rule Id must be unique. Found same ID for more than one rule: %s", r.ID)
			}
			ids[r.ID] = true
		}
		if err := validateRule(r, src.Name, priorities); err != nil {
			return err
		}
	}
	if !validRole(c.Role) {
		return refuse(ErrInvalidRole, "Invalid Role specified in replication configuration: %q is not an IAM role ARN", c.Role)
	}
	if src.Versioning != Enabled {
		return refuse(ErrSourceNotVersioned, msgSourceNotVersioned)
	}
	checked := map[string]bool{}
	for _, r := range c.Rules {
		name := r.Destination.BucketName()
		if checked[name] {
			continue
		}
		checked[name] = true
		dst, err := lookup(name)
		if errors.Is(err, ErrBucketNotFound) {
			return refuse(ErrDestinationNotFound, msgDestinationNotFound)
		}
		if err != nil {
			return fmt.Errorf("look up destination bucket %q: %w", name, err)
		}
		if dst.Versioning != Enabled {
			return refuse(ErrDestinationNotVersioned, msgDestinationNotVersioned)
		}
	}
	for i := range c.Rules {
		for c.Rules[i].ID == "" {
			if id := newRuleID(); !ids[id] {
				c.Rules[i].ID = id
				ids[id] = true
			}
		}
	}
	return nil
}

// validateSchema refuses what S3's XML schema does not allow.
func validateSchema(c *Config) error {
	bad := func(why string, args ...any) error { return refuse(ErrMalformed, why, args...) }
	if c.Role == "" {
		return bad("no Role")
	}
	if len(c.Rules) == 0 || len(c.Rules) > MaxRules {
		return bad("%d rules; a configuration has 1 to %d", len(c.Rules), MaxRules)
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if !isStatus(r.Status) {
			return bad("rule %d: Status %q", i+1, r.Status)
		}
		if (r.Prefix == nil) == (r.Filter == nil) {
			return bad("rule %d: needs exactly one of Prefix and Filter", i+1)
		}
		if f := r.Filter; f != nil {
			n := 0
			for _, set := range []bool{f.Prefix != nil, f.Tag != nil, f.And != nil} {
				if set {
					n++
				}
			}
			if n > 1 {
				return bad("rule %d: Filter has more than one of Prefix, Tag and And", i+1)
			}
			tags := []Tag{}
			if f.Tag != nil {
				tags = append(tags, *f.Tag)
			}
			if f.And != nil {
				tags = append(tags, f.And.Tags...)
			}
			for _, t := range tags {
				if t.Key == "" {
					return bad("rule %d: tag without a key", i+1)
				}
			}
		}
		if dm := r.DeleteMarkerReplication; dm != nil && dm.Status != "" && !isStatus(dm.Status) {
			return bad("rule %d: DeleteMarkerReplication Status %q", i+1, dm.Status)
		}
		if e := r.ExistingObjectReplication; e != nil && !isStatus(e.Status) {
			return bad("rule %d: ExistingObjectReplication Status %q", i+1, e.Status)
		}
		if s := r.SourceSelectionCriteria; s != nil {
			for _, t := range []*Toggle{s.SseKmsEncryptedObjects, s.ReplicaModifications} {
				if t != nil && !isStatus(t.Status) {
					return bad("rule %d: SourceSelectionCriteria Status %q", i+1, t.Status)
				}
			}
		}
		d := &r.Destination
		if d.Bucket == "" {
			return bad("rule %d: no destination Bucket", i+1)
		}
		if d.StorageClass != "" && !slices.Contains(StorageClasses, d.StorageClass) {
			return bad("rule %d: StorageClass %q", i+1, d.StorageClass)
		}
		if a := d.AccessControlTranslation; a != nil && a.Owner != ownerTarget {
			return bad("rule %d: AccessControlTranslation Owner %q", i+1, a.Owner)
		}
		if t := d.ReplicationTime; t != nil && (!isStatus(t.Status) || t.Time == nil) {
			return bad("rule %d: ReplicationTime needs a Status and a Time", i+1)
		}
		if m := d.Metrics; m != nil && !isStatus(m.Status) {
			return bad("rule %d: Metrics Status %q", i+1, m.Status)
		}
	}
	return nil
}

// validateRule applies S3's rules to one rule that passed the schema.
func validateRule(r *Rule, source string, priorities map[int]bool) error {
	if r.V2() {
		if r.DeleteMarkerReplication == nil {
			return refuse(ErrDeleteMarkerReplicationRequired, msgDeleteMarkerRequired)
		}
		if r.Priority == nil {
			return refuse(ErrPriorityRequired, msgPriorityRequired)
		}
		if priorities[*r.Priority] {
			return refuse(ErrDuplicatePriority, "Found overlapping priority %d in replication configuration; rule priorities must be unique.", *r.Priority)
		}
		priorities[*r.Priority] = true
		if r.DeleteMarkerReplication.Status == Enabled && r.hasTagFilter() {
			return refuse(ErrDeleteMarkerReplicationWithTags, msgDeleteMarkerWithTags)
		}
	}
	d := &r.Destination
	name := d.BucketName()
	if name == "" {
		return refuse(ErrInvalidDestination, "Invalid bucket ARN: %q; a destination is named arn:aws:s3:::bucket-name", d.Bucket)
	}
	if name == source {
		return refuse(ErrSameBucket, "Destination bucket cannot be the same as the source bucket.")
	}
	if d.Account != "" && !isAccountID(d.Account) {
		return refuse(ErrInvalidAccount, "Invalid destination Account: %q is not a 12-digit account ID", d.Account)
	}
	if d.AccessControlTranslation != nil && d.Account == "" {
		return refuse(ErrInvalidAccount, "Account must be specified in the Destination when AccessControlTranslation is specified.")
	}
	if err := validateRTC(d); err != nil {
		return err
	}
	sseKMS := r.SourceSelectionCriteria != nil && r.SourceSelectionCriteria.SseKmsEncryptedObjects != nil &&
		r.SourceSelectionCriteria.SseKmsEncryptedObjects.Status == Enabled
	keyID := d.EncryptionConfiguration != nil && d.EncryptionConfiguration.ReplicaKmsKeyID != ""
	if sseKMS && !keyID {
		return refuse(ErrEncryption, "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects tag is present.")
	}
	if keyID && !sseKMS {
		return refuse(ErrEncryption, "SseKmsEncryptedObjects must be specified if EncryptionConfiguration is present.")
	}
	return nil
}

// validateRTC applies the rules of Replication Time Control and metrics:
// RTC needs metrics with the same 15-minute threshold, and every time
// given is 15 minutes. Metrics without RTC are allowed, as in S3.
func validateRTC(d *Destination) error {
	is15 := func(t *TimeValue) bool { return t != nil && t.Minutes != nil && *t.Minutes == RTCMinutes }
	if t := d.ReplicationTime; t != nil {
		if !is15(t.Time) {
			return refuse(ErrReplicationTime, "ReplicationTime Time Minutes must be %d.", RTCMinutes)
		}
		if t.Status == Enabled && (d.Metrics == nil || d.Metrics.Status != Enabled) {
			return refuse(ErrReplicationTime, "Metrics must be enabled when ReplicationTime is enabled.")
		}
		if t.Status == Enabled && d.Metrics.EventThreshold == nil {
			return refuse(ErrReplicationTime, "Metrics EventThreshold must be specified when ReplicationTime is enabled.")
		}
	}
	if m := d.Metrics; m != nil && m.EventThreshold != nil && !is15(m.EventThreshold) {
		return refuse(ErrReplicationTime, "Metrics EventThreshold Minutes must be %d.", RTCMinutes)
	}
	return nil
}

func isStatus(s string) bool { return s == Enabled || s == Disabled }

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validRole reports whether s is an IAM role ARN:
// arn:<partition>:iam::<account>:role/<path/>name.
func validRole(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "iam" || parts[3] != "" || !isAccountID(parts[4]) {
		return false
	}
	name, ok := strings.CutPrefix(parts[5], "role/")
	return ok && name != "" && !strings.HasSuffix(name, "/")
}
