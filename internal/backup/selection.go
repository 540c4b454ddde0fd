package backup

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Selection assigns resources to a backup plan. Its fields are named as
// AWS Backup's BackupSelection.
type Selection struct {
	SelectionName string
	IamRoleArn    string
	Resources     []string    `json:",omitempty"`
	NotResources  []string    `json:",omitempty"`
	ListOfTags    []Condition `json:",omitempty"`
	Conditions    *Conditions `json:",omitempty"`
}

// Condition is one entry of ListOfTags: a tag that must equal a value.
type Condition struct {
	ConditionType  string
	ConditionKey   string
	ConditionValue string
}

// Conditions are tag conditions that must all hold.
type Conditions struct {
	StringEquals    []ConditionParameter `json:",omitempty"`
	StringNotEquals []ConditionParameter `json:",omitempty"`
	StringLike      []ConditionParameter `json:",omitempty"`
	StringNotLike   []ConditionParameter `json:",omitempty"`
}

// ConditionParameter is a tag key (aws:ResourceTag/KEY or KEY) and a value.
type ConditionParameter struct {
	ConditionKey   string `json:",omitempty"`
	ConditionValue string `json:",omitempty"`
}

// StoredSelection is a selection as the catalog keeps it.
type StoredSelection struct {
	SelectionID      string
	BackupPlanID     string
	CreatorRequestID string
	CreationDate     time.Time
	Selection        Selection
}

const conditionStringEquals = "STRINGEQUALS"

var (
	selectionNameRE = regexp.MustCompile(`^[a-zA-Z0-9\-\_\.]{1,50}$`)
	roleARNRE       = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
)

// Validate checks a selection as AWS Backup does.
func (s *Selection) Validate() error {
	switch {
	case s.SelectionName == "":
		return errorf(ErrMissingParameter, "Missing required parameter SelectionName.")
	case !selectionNameRE.MatchString(s.SelectionName):
		return errorf(ErrInvalidParameter, "Invalid selection name %q: it must contain 1 to 50 alphanumeric or '-_.' characters.", s.SelectionName)
	case s.IamRoleArn == "":
		return errorf(ErrMissingParameter, "Missing required parameter IamRoleArn.")
	case !roleARNRE.MatchString(s.IamRoleArn):
		return errorf(ErrInvalidParameter, "Invalid IamRoleArn %q: it must be the ARN of an IAM role.", s.IamRoleArn)
	}
	for _, list := range [][]string{s.Resources, s.NotResources} {
		if len(list) > 500 {
			return errorf(ErrLimitExceeded, "A selection can name at most 500 resources.")
		}
		for _, r := range list {
			if r != "*" && !strings.HasPrefix(r, "arn:") {
				return errorf(ErrInvalidParameter, "Invalid resource ARN %q.", r)
			}
		}
	}
	for _, c := range s.ListOfTags {
		if c.ConditionType != conditionStringEquals {
			return errorf(ErrInvalidParameter, "Invalid ConditionType %q: ListOfTags supports only STRINGEQUALS.", c.ConditionType)
		}
		if c.ConditionKey == "" {
			return errorf(ErrMissingParameter, "Missing required parameter ConditionKey in ListOfTags.")
		}
	}
	if c := s.Conditions; c != nil {
		for _, ps := range [][]ConditionParameter{c.StringEquals, c.StringNotEquals, c.StringLike, c.StringNotLike} {
			for _, p := range ps {
				if p.ConditionKey == "" {
					return errorf(ErrMissingParameter, "Missing required parameter ConditionKey in Conditions.")
				}
			}
		}
	}
	return nil
}

// Matches reports whether the selection assigns the resource with the
// given ARN and tags, by AWS Backup's rules:
//
//   - a resource is a candidate if it matches any ARN of Resources or any
//     tag of ListOfTags (the two are ORed); when both are empty, every
//     resource is a candidate ("*" in Resources says the same);
//   - every entry of Conditions must then hold (AND);
//   - a resource matching any ARN of NotResources is excluded.
//
// ARNs in Resources and NotResources may hold "*", which matches any run
// of characters (arn:aws:s3:::prod-*, arn:aws:ec2:*:*:volume/*). Tag
// keys may be written aws:ResourceTag/KEY or KEY; values are compared
// case-sensitively; StringLike values may hold "*" anywhere. A
// StringNotEquals or StringNotLike condition on a tag the resource does
// not have holds, as IAM's negated operators do.
func (s *Selection) Matches(resourceARN string, tags map[string]string) bool {
	candidate := len(s.Resources) == 0 && len(s.ListOfTags) == 0
	for _, pat := range s.Resources {
		if wildcardMatch(pat, resourceARN) {
			candidate = true
			break
		}
	}
	if !candidate {
		for _, c := range s.ListOfTags {
			if v, ok := tags[tagKey(c.ConditionKey)]; ok && v == c.ConditionValue {
				candidate = true
				break
			}
		}
	}
	if !candidate {
		return false
	}
	if c := s.Conditions; c != nil {
		for _, p := range c.StringEquals {
			if v, ok := tags[tagKey(p.ConditionKey)]; !ok || v != p.ConditionValue {
				return false
			}
		}
		for _, p := range c.StringNotEquals {
			if v, ok := tags[tagKey(p.ConditionKey)]; ok && v == p.ConditionValue {
				return false
			}
		}
		for _, p := range c.StringLike {
			if v, ok := tags[tagKey(p.ConditionKey)]; !ok || !wildcardMatch(p.ConditionValue, v) {
				return false
			}
		}
		for _, p := range c.StringNotLike {
			if v, ok := tags[tagKey(p.ConditionKey)]; ok && wildcardMatch(p.ConditionValue, v) {
				return false
			}
		}
	}
	for _, pat := range s.NotResources {
		if wildcardMatch(pat, resourceARN) {
			return false
		}
	}
	return true
}

func tagKey(k string) string { return strings.TrimPrefix(k, "aws:ResourceTag/") }

// wildcardMatch reports whether s matches pattern, in which "*" stands
// for any run of characters, possibly empty. It runs in linear time
// (greedy matching with one backtrack point).
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] != '*' && pattern[p] == s[i]:
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// CreateSelection assigns resources to a live plan.
func (c *Catalog) CreateSelection(ctx context.Context, account, planID string, sel Selection, creatorRequestID string) (*StoredSelection, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	out := &StoredSelection{SelectionID: newUUID(), BackupPlanID: planID, CreatorRequestID: creatorRequestID, CreationDate: c.clock(), Selection: sel}
	err := c.update(ctx, func(tx meta.Tx) error {
		if _, err := livePlan(tx, account, planID); err != nil {
			return err
		}
		n := 0
		err := scan(tx, spaceSelections, key(account, planID), func(k, v []byte) error {
			var other StoredSelection
			if err := json.Unmarshal(v, &other); err != nil {
				return err
			}
			if other.Selection.SelectionName == sel.SelectionName {
				return errorf(ErrAlreadyExists, "A selection named %s already exists in backup plan %s.", sel.SelectionName, planID)
			}
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if n >= MaxSelectionsPerPlan {
			return errorf(ErrLimitExceeded, "A backup plan can have at most %d selections.", MaxSelectionsPerPlan)
		}
		return putJSON(tx, spaceSelections, key(account, planID, out.SelectionID), out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetSelection returns a selection of a plan.
func (c *Catalog) GetSelection(ctx context.Context, account, planID, selectionID string) (*StoredSelection, error) {
	out := &StoredSelection{}
	err := c.view(ctx, func(tx meta.Tx) error {
		if _, err := getPlan(tx, account, planID); err != nil {
			return err
		}
		ok := false
		var err error
		if !strings.Contains(selectionID, "/") && selectionID != "" {
			ok, err = getJSON(tx, spaceSelections, key(account, planID, selectionID), out)
		}
		if err == nil && !ok {
			err = errorf(ErrNotFound, "Selection %s of backup plan %s does not exist.", selectionID, planID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListSelections returns a plan's selections, oldest first.
func (c *Catalog) ListSelections(ctx context.Context, account, planID string) ([]*StoredSelection, error) {
	var out []*StoredSelection
	err := c.view(ctx, func(tx meta.Tx) error {
		if _, err := getPlan(tx, account, planID); err != nil {
			return err
		}
		return scan(tx, spaceSelections, key(account, planID), func(k, v []byte) error {
			s := &StoredSelection{}
			if err := json.Unmarshal(v, s); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationDate.Before(out[j].CreationDate) })
	return out, err
}

// DeleteSelection removes a selection from a plan.
func (c *Catalog) DeleteSelection(ctx context.Context, account, planID, selectionID string) error {
	return c.update(ctx, func(tx meta.Tx) error {
		if _, err := getPlan(tx, account, planID); err != nil {
			return err
		}
		k := key(account, planID, selectionID)
		if strings.Contains(selectionID, "/") || selectionID == "" || tx.Get(spaceSelections, k) == nil {
			return errorf(ErrNotFound, "Selection %s of backup plan %s does not exist.", selectionID, planID)
		}
		return tx.Delete(spaceSelections, k)
	})
}
