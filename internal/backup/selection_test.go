package backup

import "testing"

func TestSelectionMatches(t *testing.T) {
	const bucket = "arn:aws:s3:::source-bucket-name"
	tags := map[string]string{"backup": "daily", "owner": "team-a", "env": "production"}
	cases := []struct {
		name string
		sel  Selection
		arn  string
		tags map[string]string
		want bool
	}{
		{"nothing given selects everything", Selection{}, bucket, nil, true},
		{"exact ARN", Selection{Resources: []string{bucket}}, bucket, nil, true},
		{"other ARN", Selection{Resources: []string{"arn:aws:s3:::other"}}, bucket, nil, false},
		{"ARN is not a prefix", Selection{Resources: []string{"arn:aws:s3:::source"}}, bucket, nil, false},
		{"trailing wildcard", Selection{Resources: []string{"arn:aws:s3:::source-*"}}, bucket, nil, true},
		{"star alone", Selection{Resources: []string{"*"}}, bucket, nil, true},
		{"wildcards in region and account", Selection{Resources: []string{"arn:aws:ec2:*:*:volume/*"}}, "arn:aws:ec2:us-east-1:111122223333:volume/vol-1", nil, true},
		{"wildcard of another service", Selection{Resources: []string{"arn:aws:ec2:*:*:volume/*"}}, bucket, nil, false},
		{"all S3 buckets", Selection{Resources: []string{"arn:aws:s3:::*"}}, bucket, nil, true},
		{"NotResources excludes", Selection{Resources: []string{"arn:aws:s3:::*"}, NotResources: []string{bucket}}, bucket, nil, false},
		{"NotResources wildcard excludes", Selection{NotResources: []string{"arn:aws:s3:::source-*"}}, bucket, nil, false},
		{"NotResources leaves others", Selection{Resources: []string{"arn:aws:s3:::*"}, NotResources: []string{"arn:aws:s3:::other"}}, bucket, nil, true},
		{"ListOfTags match", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, bucket, tags, true},
		{"ListOfTags with aws:ResourceTag key", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "aws:ResourceTag/backup", "daily"}}}, bucket, tags, true},
		{"ListOfTags wrong value", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "weekly"}}}, bucket, tags, false},
		{"ListOfTags is case sensitive", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "Daily"}}}, bucket, tags, false},
		{"ListOfTags ORed", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "weekly"}, {"STRINGEQUALS", "owner", "team-a"}}}, bucket, tags, true},
		{"Resources OR ListOfTags: by tag", Selection{Resources: []string{"arn:aws:ec2:*:*:volume/*"}, ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}}, bucket, tags, true},
		{"Resources OR ListOfTags: by ARN", Selection{Resources: []string{bucket}, ListOfTags: []Condition{{"STRINGEQUALS", "backup", "weekly"}}}, bucket, tags, true},
		{"Resources OR ListOfTags: neither", Selection{Resources: []string{"arn:aws:s3:::x"}, ListOfTags: []Condition{{"STRINGEQUALS", "backup", "weekly"}}}, bucket, tags, false},
		{"Conditions alone", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "daily"}}}}, bucket, tags, true},
		{"Conditions ANDed", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "daily"}, {"aws:ResourceTag/owner", "team-b"}}}}, bucket, tags, false},
		{"Resources AND Conditions: both", Selection{Resources: []string{bucket}, Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "daily"}}}}, bucket, tags, true},
		{"Resources AND Conditions: condition fails", Selection{Resources: []string{bucket}, Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "weekly"}}}}, bucket, tags, false},
		{"StringEquals on missing tag", Selection{Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "daily"}}}}, bucket, nil, false},
		{"StringNotEquals holds", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{{"aws:ResourceTag/env", "test"}}}}, bucket, tags, true},
		{"StringNotEquals fails", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{{"aws:ResourceTag/env", "production"}}}}, bucket, tags, false},
		{"StringNotEquals on missing tag holds", Selection{Conditions: &Conditions{StringNotEquals: []ConditionParameter{{"aws:ResourceTag/env", "production"}}}}, bucket, nil, true},
		{"StringLike prefix", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{{"aws:ResourceTag/env", "prod*"}}}}, bucket, tags, true},
		{"StringLike infix", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{{"aws:ResourceTag/env", "*rod*"}}}}, bucket, tags, true},
		{"StringLike no match", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{{"aws:ResourceTag/env", "dev*"}}}}, bucket, tags, false},
		{"StringLike missing tag", Selection{Conditions: &Conditions{StringLike: []ConditionParameter{{"aws:ResourceTag/env", "*"}}}}, bucket, nil, false},
		{"StringNotLike holds", Selection{Conditions: &Conditions{StringNotLike: []ConditionParameter{{"aws:ResourceTag/env", "dev*"}}}}, bucket, tags, true},
		{"StringNotLike fails", Selection{Conditions: &Conditions{StringNotLike: []ConditionParameter{{"aws:ResourceTag/env", "*tion"}}}}, bucket, tags, false},
		{"NotResources beats tags", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "daily"}}, NotResources: []string{bucket}}, bucket, tags, false},
		{"ListOfTags miss then Conditions irrelevant", Selection{ListOfTags: []Condition{{"STRINGEQUALS", "backup", "weekly"}}, Conditions: &Conditions{StringEquals: []ConditionParameter{{"aws:ResourceTag/backup", "daily"}}}}, bucket, tags, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.Matches(tc.arn, tc.tags); got != tc.want {
				t.Fatalf("Matches(%s, %v) = %v, want %v", tc.arn, tc.tags, got, tc.want)
			}
		})
	}
}

func TestWildcardMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"a*", "a", true}, {"*a", "ba", true},
		{"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"**", "x", true}, {"a*a*a", "aaaa", true},
		{"*abc", "ababc", true}, {"abc", "ABC", false},
	}
	for _, tc := range cases {
		if got := wildcardMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}

func TestSelectionValidate(t *testing.T) {
	ok := Selection{SelectionName: "s3", IamRoleArn: "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole", Resources: []string{"arn:aws:s3:::b"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]struct {
		mod  func(*Selection)
		kind error
	}{
		"no name":       {func(s *Selection) { s.SelectionName = "" }, ErrMissingParameter},
		"bad name":      {func(s *Selection) { s.SelectionName = "a b" }, ErrInvalidParameter},
		"no role":       {func(s *Selection) { s.IamRoleArn = "" }, ErrMissingParameter},
		"user not role": {func(s *Selection) { s.IamRoleArn = "arn:aws:iam::111122223333:user/u" }, ErrInvalidParameter},
		"bad resource":  {func(s *Selection) { s.Resources = []string{"bucket"} }, ErrInvalidParameter},
		"bad condition": {func(s *Selection) { s.ListOfTags = []Condition{{"STRINGLIKE", "k", "v"}} }, ErrInvalidParameter},
		"condition key": {func(s *Selection) { s.Conditions = &Conditions{StringLike: []ConditionParameter{{"", "v"}}} }, ErrMissingParameter},
	}
	for name, tc := range bad {
		s := ok
		tc.mod(&s)
		if err := s.Validate(); !errorsIs(err, tc.kind) {
			t.Errorf("%s: got %v, want %v", name, err, tc.kind)
		}
	}
}
