package replication

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

const testRole = "arn:aws:iam::111122223333:role/replication"

// v1Config is the configuration of AWS's walkthrough: one legacy rule.
func v1Config() *Config {
	return &Config{Role: testRole, Rules: []Rule{{
		ID: "replicate-all-objects", Status: Enabled, Prefix: ptr(""),
		Destination: Destination{Bucket: "arn:aws:s3:::dst", StorageClass: "STANDARD"},
	}}}
}

// v2Config has two V2 rules to two destinations.
func v2Config() *Config {
	return &Config{Role: testRole, Rules: []Rule{
		{
			ID: "logs", Priority: ptr(2), Status: Enabled, Filter: &Filter{Prefix: ptr("logs/")},
			DeleteMarkerReplication: &Toggle{Status: Enabled},
			Destination: Destination{
				Bucket: "arn:aws:s3:::dst", Account: "444455556666", StorageClass: "STANDARD_IA",
				AccessControlTranslation: &AccessControlTranslation{Owner: "Destination"},
				ReplicationTime:          &ReplicationTime{Status: Enabled, Time: &TimeValue{Minutes: ptr(15)}},
				Metrics:                  &Metrics{Status: Enabled, EventThreshold: &TimeValue{Minutes: ptr(15)}},
			},
			SourceSelectionCriteria: &SourceSelectionCriteria{ReplicaModifications: &Toggle{Status: Enabled}},
		},
		{
			ID: "tagged", Priority: ptr(1), Status: Enabled,
			Filter:                  &Filter{And: &And{Prefix: ptr("docs/"), Tags: []Tag{{"class", "gold"}}}},
			DeleteMarkerReplication: &Toggle{Status: Disabled},
			Destination:             Destination{Bucket: "arn:aws:s3:::dst2"},
		},
	}}
}

var testBuckets = map[string]BucketInfo{
	"src":         {Name: "src", Versioning: Enabled},
	"dst":         {Name: "dst", Versioning: Enabled},
	"dst2":        {Name: "dst2", Versioning: Enabled},
	"unversioned": {Name: "unversioned"},
	"suspended":   {Name: "suspended", Versioning: "Suspended"},
}

func lookup(name string) (BucketInfo, error) {
	if b, ok := testBuckets[name]; ok {
		return b, nil
	}
	if name == "broken" {
		return BucketInfo{}, errors.New("disk on fire")
	}
	return BucketInfo{}, fmt.Errorf("%w: %s", ErrBucketNotFound, name)
}

func TestValidateAccepts(t *testing.T) {
	for name, c := range map[string]*Config{"v1": v1Config(), "v2": v2Config()} {
		if err := Validate(c, testBuckets["src"], lookup); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Metrics without Replication Time Control; an empty filter; a rule
	// without an ID gets one.
	c := v2Config()
	c.Rules[0].ID = ""
	c.Rules[0].Destination.ReplicationTime = nil
	c.Rules[1].Filter = &Filter{}
	if err := Validate(c, testBuckets["src"], lookup); err != nil {
		t.Fatal(err)
	}
	id, err := base64.StdEncoding.DecodeString(c.Rules[0].ID)
	if err != nil || len(id) != 36 || c.Rules[1].ID != "tagged" {
		t.Fatalf("generated ID %q (%q, %v)", c.Rules[0].ID, id, err)
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := []struct {
		name   string
		base   func() *Config
		change func(c *Config)
		src    string
		want   error
		msg    string // the message, when it is S3's fixed wording
	}{
		{name: "no role", base: v1Config, change: func(c *Config) { c.Role = "" }, want: ErrMalformed},
		{name: "no rules", base: v1Config, change: func(c *Config) { c.Rules = nil }, want: ErrMalformed},
		{name: "too many rules", base: v2Config, change: func(c *Config) {
			for i := len(c.Rules); i <= MaxRules; i++ {
				r := c.Rules[1]
				r.ID, r.Priority = fmt.Sprint("r", i), ptr(i+10)
				c.Rules = append(c.Rules, r)
			}
		}, want: ErrMalformed},
		{name: "bad status", base: v1Config, change: func(c *Config) { c.Rules[0].Status = "enabled" }, want: ErrMalformed},
		{name: "prefix and filter", base: v1Config, change: func(c *Config) { c.Rules[0].Filter = &Filter{} }, want: ErrMalformed},
		{name: "neither prefix nor filter", base: v1Config, change: func(c *Config) { c.Rules[0].Prefix = nil }, want: ErrMalformed},
		{name: "filter with two conditions", base: v2Config, change: func(c *Config) { c.Rules[0].Filter.Tag = &Tag{"a", "b"} }, want: ErrMalformed},
		{name: "tag without key", base: v2Config, change: func(c *Config) { c.Rules[1].Filter.And.Tags[0].Key = "" }, want: ErrMalformed},
		{name: "bad delete marker status", base: v2Config, change: func(c *Config) { c.Rules[0].DeleteMarkerReplication.Status = "On" }, want: ErrMalformed},
		{name: "bad existing object status", base: v2Config, change: func(c *Config) { c.Rules[0].ExistingObjectReplication = &Toggle{} }, want: ErrMalformed},
		{name: "bad replica modifications status", base: v2Config, change: func(c *Config) {
			c.Rules[0].SourceSelectionCriteria.ReplicaModifications.Status = "yes"
		}, want: ErrMalformed},
		{name: "no destination", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "" }, want: ErrMalformed},
		{name: "storage class", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.StorageClass = "COLD" }, want: ErrMalformed},
		{name: "owner override", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.AccessControlTranslation.Owner = "Source" }, want: ErrMalformed},
		{name: "replication time without time", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.ReplicationTime.Time = nil }, want: ErrMalformed},
		{name: "metrics status", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Metrics.Status = "" }, want: ErrMalformed},
		{name: "mixed schema", base: v2Config, change: func(c *Config) { c.Rules[1].Filter, c.Rules[1].Prefix = nil, ptr("x") }, want: ErrMixedSchema},
		{name: "long ID", base: v1Config, change: func(c *Config) { c.Rules[0].ID = strings.Repeat("é", 256) }, want: ErrRuleIDTooLong,
			msg: "ID length should not exceed allowed limit of 255"},
		{name: "duplicate ID", base: v2Config, change: func(c *Config) { c.Rules[1].ID = "logs" }, want: ErrDuplicateRuleID},
		{name: "V2 without delete marker replication", base: v2Config, change: func(c *Config) { c.Rules[1].DeleteMarkerReplication = nil },
			want: ErrDeleteMarkerReplicationRequired, msg: msgDeleteMarkerRequired},
		{name: "V2 without priority", base: v2Config, change: func(c *Config) { c.Rules[1].Priority = nil },
			want: ErrPriorityRequired, msg: msgPriorityRequired},
		{name: "duplicate priority", base: v2Config, change: func(c *Config) { c.Rules[1].Priority = ptr(2) }, want: ErrDuplicatePriority},
		{name: "negative priority", base: v2Config, change: func(c *Config) { c.Rules[1].Priority = ptr(-5) },
			want: ErrNegativePriority, msg: "Priority must be a non-negative integer."},
		{name: "delete markers with tag", base: v2Config, change: func(c *Config) { c.Rules[1].DeleteMarkerReplication.Status = Enabled },
			want: ErrDeleteMarkerReplicationWithTags, msg: msgDeleteMarkerWithTags},
		{name: "delete markers with single tag", base: v2Config, change: func(c *Config) {
			c.Rules[0].Filter = &Filter{Tag: &Tag{"k", "v"}}
		}, want: ErrDeleteMarkerReplicationWithTags},
		{name: "destination not an ARN", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "dst" }, want: ErrInvalidDestination},
		{name: "destination object ARN", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "arn:aws:s3:::dst/key" }, want: ErrInvalidDestination},
		{name: "destination is source", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "arn:aws:s3:::src" }, want: ErrSameBucket},
		{name: "account", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Account = "12345" }, want: ErrInvalidAccount},
		{name: "owner override without account", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Account = "" }, want: ErrInvalidAccount},
		{name: "replication time minutes", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.ReplicationTime.Time.Minutes = ptr(10) }, want: ErrReplicationTime},
		{name: "replication time without metrics", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Metrics = nil }, want: ErrReplicationTime},
		{name: "replication time with disabled metrics", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Metrics.Status = Disabled }, want: ErrReplicationTime},
		{name: "replication time without threshold", base: v2Config, change: func(c *Config) { c.Rules[0].Destination.Metrics.EventThreshold = nil }, want: ErrReplicationTime},
		{name: "threshold minutes", base: v2Config, change: func(c *Config) {
			c.Rules[0].Destination.ReplicationTime = nil
			c.Rules[0].Destination.Metrics.EventThreshold.Minutes = ptr(30)
		}, want: ErrReplicationTime},
		{name: "SSE-KMS without key", base: v2Config, change: func(c *Config) {
			c.Rules[0].SourceSelectionCriteria.SseKmsEncryptedObjects = &Toggle{Status: Enabled}
		}, want: ErrEncryption},
		{name: "key without SSE-KMS", base: v2Config, change: func(c *Config) {
			c.Rules[0].Destination.EncryptionConfiguration = &EncryptionConfiguration{ReplicaKmsKeyID: "arn:aws:kms:us-west-2:111122223333:key/k"}
		}, want: ErrEncryption},
		{name: "role not an ARN", base: v1Config, change: func(c *Config) { c.Role = "replication" }, want: ErrInvalidRole},
		{name: "role of a user", base: v1Config, change: func(c *Config) { c.Role = "arn:aws:iam::111122223333:user/bob" }, want: ErrInvalidRole},
		{name: "role without account", base: v1Config, change: func(c *Config) { c.Role = "arn:aws:iam:::role/r" }, want: ErrInvalidRole},
		{name: "source unversioned", base: v1Config, src: "unversioned", want: ErrSourceNotVersioned, msg: msgSourceNotVersioned},
		{name: "source suspended", base: v1Config, src: "suspended", want: ErrSourceNotVersioned},
		{name: "destination missing", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "arn:aws:s3:::nosuch" },
			want: ErrDestinationNotFound, msg: msgDestinationNotFound},
		{name: "destination unversioned", base: v2Config, change: func(c *Config) { c.Rules[1].Destination.Bucket = "arn:aws:s3:::unversioned" },
			want: ErrDestinationNotVersioned, msg: msgDestinationNotVersioned},
		{name: "destination suspended", base: v1Config, change: func(c *Config) { c.Rules[0].Destination.Bucket = "arn:aws:s3:::suspended" },
			want: ErrDestinationNotVersioned},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.base()
			if tc.change != nil {
				tc.change(c)
			}
			src := "src"
			if tc.src != "" {
				src = tc.src
			}
			err := Validate(c, testBuckets[src], lookup)
			var ce *ConfigError
			if !errors.Is(err, tc.want) || !errors.As(err, &ce) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Fatalf("message %q, want %q", err, tc.msg)
			}
		})
	}
}

func TestValidateLookupFailure(t *testing.T) {
	c := v1Config()
	c.Rules[0].Destination.Bucket = "arn:aws:s3:::broken"
	err := Validate(c, testBuckets["src"], lookup)
	var ce *ConfigError
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("got %v, want the lookup's own error", err)
	}
}

func TestMatches(t *testing.T) {
	tags := map[string]string{"class": "gold", "team": "a"}
	cases := []struct {
		rule Rule
		key  string
		tags map[string]string
		want bool
	}{
		{Rule{Prefix: ptr("")}, "anything", nil, true},
		{Rule{Prefix: ptr("logs/")}, "logs/a", nil, true},
		{Rule{Prefix: ptr("logs/")}, "docs/a", nil, false},
		{Rule{Filter: &Filter{}}, "anything", nil, true},
		{Rule{Filter: &Filter{Prefix: ptr("a/")}}, "a/b", nil, true},
		{Rule{Filter: &Filter{Prefix: ptr("a/")}}, "b/a/", nil, false},
		{Rule{Filter: &Filter{Tag: &Tag{"class", "gold"}}}, "k", tags, true},
		{Rule{Filter: &Filter{Tag: &Tag{"class", "silver"}}}, "k", tags, false},
		{Rule{Filter: &Filter{Tag: &Tag{"class", "gold"}}}, "k", nil, false},
		{Rule{Filter: &Filter{And: &And{Prefix: ptr("d/"), Tags: []Tag{{"class", "gold"}, {"team", "a"}}}}}, "d/x", tags, true},
		{Rule{Filter: &Filter{And: &And{Prefix: ptr("d/"), Tags: []Tag{{"class", "gold"}}}}}, "e/x", tags, false},
		{Rule{Filter: &Filter{And: &And{Tags: []Tag{{"class", "gold"}, {"team", "b"}}}}}, "d/x", tags, false},
		{Rule{Filter: &Filter{And: &And{Tags: []Tag{{"class", "gold"}, {"team", "a"}}}}}, "x", tags, true},
	}
	for i, tc := range cases {
		if got := Matches(tc.rule, tc.key, tc.tags); got != tc.want {
			t.Errorf("case %d: Matches(%q) = %v, want %v", i, tc.key, got, tc.want)
		}
	}
}

func TestSelectRules(t *testing.T) {
	rule := func(id string, prio int, status, prefix, dest string) Rule {
		return Rule{ID: id, Priority: ptr(prio), Status: status, Filter: &Filter{Prefix: ptr(prefix)},
			DeleteMarkerReplication: &Toggle{Status: Disabled}, Destination: Destination{Bucket: "arn:aws:s3:::" + dest}}
	}
	c := &Config{Role: testRole, Rules: []Rule{
		rule("a-low", 1, Enabled, "", "a"),
		rule("a-high", 5, Enabled, "logs/", "a"),
		rule("b", 2, Enabled, "", "b"),
		rule("c-off", 9, Disabled, "", "c"),
		rule("a-higher-off", 10, Disabled, "", "a"),
		rule("d-tag", 3, Enabled, "", "d"),
	}}
	c.Rules[5].Filter = &Filter{Tag: &Tag{"k", "v"}}
	ids := func(rs []Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		key  string
		tags map[string]string
		want []string
	}{
		{"logs/x", nil, []string{"a-high", "b"}},
		{"docs/x", nil, []string{"a-low", "b"}},
		{"docs/x", map[string]string{"k": "v"}, []string{"a-low", "b", "d-tag"}},
	} {
		if got := ids(SelectRules(c, tc.key, tc.tags)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SelectRules(%q, %v) = %v, want %v", tc.key, tc.tags, got, tc.want)
		}
	}
	// V1 rules have no priority: of two to one destination, the first wins.
	v1 := v1Config()
	second := v1.Rules[0]
	second.ID = "second"
	v1.Rules = append(v1.Rules, second)
	if got := ids(SelectRules(v1, "k", nil)); !reflect.DeepEqual(got, []string{"replicate-all-objects"}) {
		t.Errorf("V1 SelectRules = %v", got)
	}
}

func TestReplicatesDeleteMarkers(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want bool
	}{
		{Rule{Prefix: ptr("")}, true},
		{Rule{Prefix: ptr(""), DeleteMarkerReplication: &Toggle{Status: Disabled}}, true},
		{Rule{Filter: &Filter{}}, false},
		{Rule{Filter: &Filter{}, DeleteMarkerReplication: &Toggle{Status: Disabled}}, false},
		{Rule{Filter: &Filter{}, DeleteMarkerReplication: &Toggle{Status: Enabled}}, true},
	} {
		if got := ReplicatesDeleteMarkers(tc.rule); got != tc.want {
			t.Errorf("ReplicatesDeleteMarkers(%+v) = %v, want %v", tc.rule, got, tc.want)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	c := v2Config()
	raw, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, back) {
		t.Fatalf("round trip:\n%+v\n%+v", c, back)
	}
	if v1, _ := Encode(v1Config()); !strings.Contains(string(v1), `"prefix":""`) {
		t.Fatalf("an empty V1 prefix is lost: %s", v1)
	}
}
