package backup

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/meta"
)

// Restore testing: plans that say when to restore which recovery points
// as a test, and selections that say which protected resources a plan
// tests. Names are the keys, as in AWS Backup, where a plan and its
// selections are addressed by name.

// Keyspaces of restore testing.
const (
	spaceRTPlans      = "backup-restore-testing-plans"      // account/plan name → RestoreTestingPlan
	spaceRTSelections = "backup-restore-testing-selections" // account/plan name/selection name → RestoreTestingSelection
)

// Quotas and defaults of restore testing, as AWS Backup's.
const (
	MaxRestoreTestingPlans              = 100
	MaxRestoreTestingSelectionsPerPlan  = 30
	defaultRestoreTestingStartWindow    = 24
	maxRestoreTestingStartWindow        = 168
	defaultSelectionWindowDays          = 30
	maxSelectionWindowDays              = 365
	maxValidationWindowHours            = 168
	AlgorithmLatestWithinWindow         = "LATEST_WITHIN_WINDOW"
	AlgorithmRandomWithinWindow         = "RANDOM_WITHIN_WINDOW"
	RecoveryPointTypeContinuous         = "CONTINUOUS"
	RecoveryPointTypeSnapshot           = "SNAPSHOT"
	restoreTestingConditionKeyPrefix    = "aws:ResourceTag/"
	maxRestoreTestingProtectedResources = 30
)

// Validation and deletion statuses of a restore job made by restore
// testing (RestoreValidationStatus, RestoreDeletionStatus).
const (
	ValidationFailed     = "FAILED"
	ValidationSuccessful = "SUCCESSFUL"
	ValidationTimedOut   = "TIMED_OUT"
	ValidationValidating = "VALIDATING"
	DeletionDeleting     = "DELETING"
	DeletionFailed       = "FAILED"
	DeletionSuccessful   = "SUCCESSFUL"
)

var (
	// The model: "only alphanumeric characters and underscores"; the
	// selection name's length is documented as at most 50, and the plan's
	// is held to the same.
	restoreTestingNameRE = regexp.MustCompile(`^[a-zA-Z0-9_]{1,50}$`)
	creatorRequestIDRE   = regexp.MustCompile(`^[a-zA-Z0-9\-\_\.]{1,50}$`)
	resourceTypeRE       = regexp.MustCompile(`^[a-zA-Z0-9\-\_\.]{1,50}$`)
)

// RecoveryPointSelection says which recovery points a restore testing plan
// restores: from IncludeVaults minus ExcludeVaults (vault ARNs, "*"
// anywhere in them matching any run of characters), of the types listed,
// created within the last SelectionWindowDays, the newest or one at
// random.
type RecoveryPointSelection struct {
	Algorithm           string   `json:",omitempty"`
	IncludeVaults       []string `json:",omitempty"`
	ExcludeVaults       []string `json:",omitempty"`
	RecoveryPointTypes  []string `json:",omitempty"`
	SelectionWindowDays *int64   `json:",omitempty"`
}

// RestoreTestingPlan is a restore testing plan as the catalog keeps it.
type RestoreTestingPlan struct {
	RestoreTestingPlanName     string
	RestoreTestingPlanArn      string
	RecoveryPointSelection     RecoveryPointSelection
	ScheduleExpression         string
	ScheduleExpressionTimezone string
	StartWindowHours           int64
	CreatorRequestId           string `json:",omitempty"`
	CreationTime               time.Time
	LastUpdateTime             *time.Time `json:",omitempty"`
	LastExecutionTime          *time.Time `json:",omitempty"`
}

// RestoreTestingPlanInput is what CreateRestoreTestingPlan is given.
type RestoreTestingPlanInput struct {
	RestoreTestingPlanName     string
	RecoveryPointSelection     *RecoveryPointSelection
	ScheduleExpression         string
	ScheduleExpressionTimezone string
	StartWindowHours           *int64
}

// RestoreTestingPlanUpdate is what UpdateRestoreTestingPlan is given:
// members left nil keep their value; a RecoveryPointSelection changes the
// members it sets.
type RestoreTestingPlanUpdate struct {
	RecoveryPointSelection     *RecoveryPointSelection
	ScheduleExpression         *string
	ScheduleExpressionTimezone *string
	StartWindowHours           *int64
}

// KeyValue is a tag condition of a restore testing selection.
type KeyValue struct {
	Key   string
	Value string
}

// ProtectedResourceConditions are the tag conditions of a restore testing
// selection, all of which must hold.
type ProtectedResourceConditions struct {
	StringEquals    []KeyValue `json:",omitempty"`
	StringNotEquals []KeyValue `json:",omitempty"`
}

// RestoreTestingSelection assigns protected resources of one type to a
// restore testing plan.
type RestoreTestingSelection struct {
	RestoreTestingPlanName      string
	RestoreTestingSelectionName string
	ProtectedResourceType       string
	ProtectedResourceArns       []string                     `json:",omitempty"`
	ProtectedResourceConditions *ProtectedResourceConditions `json:",omitempty"`
	RestoreMetadataOverrides    map[string]string            `json:",omitempty"`
	ValidationWindowHours       *int64                       `json:",omitempty"`
	IamRoleArn                  string
	CreatorRequestId            string `json:",omitempty"`
	CreationTime                time.Time
	UpdateTime                  *time.Time `json:",omitempty"`
}

// RestoreTestingSelectionUpdate is what UpdateRestoreTestingSelection is
// given; members left nil keep their value. Setting either
// ProtectedResourceArns or ProtectedResourceConditions replaces both, as a
// selection has one or the other.
type RestoreTestingSelectionUpdate struct {
	IamRoleArn                  *string
	ProtectedResourceArns       []string
	ProtectedResourceConditions *ProtectedResourceConditions
	RestoreMetadataOverrides    map[string]string
	ValidationWindowHours       *int64
}

// newRestoreTestingPlanARN returns the ARN of a new restore testing plan:
// its name and a random suffix, as AWS makes it, so that a plan deleted
// and made again under the same name is another resource.
func (c *Catalog) newRestoreTestingPlanARN(account, name string) string {
	return c.RestoreTestingPlanARNPrefix(account) + name + "-" + newUUID()
}

// RestoreTestingPlanARNPrefix is what the ARNs of the account's restore
// testing plans start with.
func (c *Catalog) RestoreTestingPlanARNPrefix(account string) string {
	return "arn:aws:backup:" + c.region + ":" + account + ":restore-testing-plan:"
}

func validateRestoreTestingName(what, name string) error {
	if name == "" {
		return errorf(ErrMissingParameter, "Missing required parameter %s.", what)
	}
	if !restoreTestingNameRE.MatchString(name) {
		return errorf(ErrInvalidParameter, "Invalid %s %q: it must contain 1 to 50 alphanumeric or '_' characters.", what, name)
	}
	return nil
}

func validateCreatorRequestID(id string) error {
	if id != "" && !creatorRequestIDRE.MatchString(id) {
		return errorf(ErrInvalidParameter, "Invalid CreatorRequestId %q: it must contain 1 to 50 alphanumeric or '-_.' characters.", id)
	}
	return nil
}

// validateSchedule checks a schedule and its time zone as a backup rule's
// are checked.
func validateSchedule(expr, tz string) error {
	if expr == "" {
		return errorf(ErrMissingParameter, "Missing required parameter ScheduleExpression.")
	}
	if _, err := schedule.Parse(expr); err != nil {
		return errorf(ErrInvalidParameter, "Invalid ScheduleExpression: %v", err)
	}
	if strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") || strings.EqualFold(tz, "local") {
		return errorf(ErrInvalidParameter, "Invalid ScheduleExpressionTimezone %q.", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return errorf(ErrInvalidParameter, "Invalid ScheduleExpressionTimezone %q.", tz)
	}
	return nil
}

// validate checks a plan with its defaults filled in.
func (p *RestoreTestingPlan) validate() error {
	if err := validateSchedule(p.ScheduleExpression, p.ScheduleExpressionTimezone); err != nil {
		return err
	}
	if p.StartWindowHours < 1 || p.StartWindowHours > maxRestoreTestingStartWindow {
		return errorf(ErrInvalidParameter, "StartWindowHours must be from 1 to %d (got %d).", maxRestoreTestingStartWindow, p.StartWindowHours)
	}
	return p.RecoveryPointSelection.validate()
}

func (s *RecoveryPointSelection) validate() error {
	switch s.Algorithm {
	case "":
		return errorf(ErrMissingParameter, "Missing required parameter RecoveryPointSelection.Algorithm.")
	case AlgorithmLatestWithinWindow, AlgorithmRandomWithinWindow:
	default:
		return errorf(ErrInvalidParameter, "Invalid Algorithm %q: it must be %s or %s.", s.Algorithm, AlgorithmLatestWithinWindow, AlgorithmRandomWithinWindow)
	}
	if len(s.IncludeVaults) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter RecoveryPointSelection.IncludeVaults.")
	}
	for _, list := range []struct {
		name  string
		vault []string
	}{{"IncludeVaults", s.IncludeVaults}, {"ExcludeVaults", s.ExcludeVaults}} {
		for _, v := range list.vault {
			if v != "*" && !(strings.HasPrefix(v, "arn:") && strings.Contains(v, ":backup-vault:")) {
				return errorf(ErrInvalidParameter, "Invalid %s entry %q: it must be \"*\" or a backup vault ARN.", list.name, v)
			}
		}
	}
	if len(s.RecoveryPointTypes) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter RecoveryPointSelection.RecoveryPointTypes.")
	}
	for _, t := range s.RecoveryPointTypes {
		if t != RecoveryPointTypeContinuous && t != RecoveryPointTypeSnapshot {
			return errorf(ErrInvalidParameter, "Invalid RecoveryPointTypes entry %q: it must be %s or %s.", t, RecoveryPointTypeContinuous, RecoveryPointTypeSnapshot)
		}
	}
	if d := s.SelectionWindowDays; d != nil && (*d < 1 || *d > maxSelectionWindowDays) {
		return errorf(ErrInvalidParameter, "SelectionWindowDays must be from 1 to %d (got %d).", maxSelectionWindowDays, *d)
	}
	return nil
}

// MatchesVault reports whether the selection takes points of the vault
// with the given ARN.
func (s *RecoveryPointSelection) MatchesVault(vaultARN string) bool {
	in := slices.ContainsFunc(s.IncludeVaults, func(p string) bool { return wildcardMatch(p, vaultARN) })
	return in && !slices.ContainsFunc(s.ExcludeVaults, func(p string) bool { return wildcardMatch(p, vaultARN) })
}

// CreateRestoreTestingPlanInput describes a restore testing plan to
// create.
type CreateRestoreTestingPlanInput struct {
	Plan             RestoreTestingPlanInput
	Tags             map[string]string
	CreatorRequestID string
}

// CreateRestoreTestingPlan validates and stores a new plan with its tags.
// A retry with the CreatorRequestId and the plan of an earlier call
// answers that call's plan; the same CreatorRequestId with another plan
// is AlreadyExists.
func (c *Catalog) CreateRestoreTestingPlan(ctx context.Context, account string, cin CreateRestoreTestingPlanInput) (*RestoreTestingPlan, error) {
	in, creatorRequestID := cin.Plan, cin.CreatorRequestID
	if err := validateTags(cin.Tags); err != nil {
		return nil, err
	}
	if err := validateRestoreTestingName("RestoreTestingPlanName", in.RestoreTestingPlanName); err != nil {
		return nil, err
	}
	if err := validateCreatorRequestID(creatorRequestID); err != nil {
		return nil, err
	}
	if in.RecoveryPointSelection == nil {
		return nil, errorf(ErrMissingParameter, "Missing required parameter RecoveryPointSelection.")
	}
	p := &RestoreTestingPlan{
		RestoreTestingPlanName: in.RestoreTestingPlanName, RecoveryPointSelection: cloneRPSelection(*in.RecoveryPointSelection),
		ScheduleExpression: in.ScheduleExpression, ScheduleExpressionTimezone: in.ScheduleExpressionTimezone,
		StartWindowHours: defaultRestoreTestingStartWindow, CreatorRequestId: creatorRequestID, CreationTime: c.clock(),
	}
	if p.ScheduleExpressionTimezone == "" {
		p.ScheduleExpressionTimezone = DefaultTimezone
	}
	if in.StartWindowHours != nil {
		p.StartWindowHours = *in.StartWindowHours
	}
	if p.RecoveryPointSelection.SelectionWindowDays == nil {
		d := int64(defaultSelectionWindowDays)
		p.RecoveryPointSelection.SelectionWindowDays = &d
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	p.RestoreTestingPlanArn = c.newRestoreTestingPlanARN(account, p.RestoreTestingPlanName)
	var out *RestoreTestingPlan
	err := c.update(ctx, func(tx meta.Tx) error {
		n := 0
		err := scan(tx, spaceRTPlans, key(account), func(_, v []byte) error {
			other := &RestoreTestingPlan{}
			if err := json.Unmarshal(v, other); err != nil {
				return err
			}
			n++
			if creatorRequestID != "" && other.CreatorRequestId == creatorRequestID {
				if samePlanRequest(other, p) {
					out = other
					return errStopScan
				}
				return &Error{Kind: ErrAlreadyExists, Message: "A restore testing plan with the same CreatorRequestId already exists.", ARN: other.RestoreTestingPlanArn}
			}
			return nil
		})
		if err == errStopScan {
			return nil
		}
		if err != nil {
			return err
		}
		if tx.Get(spaceRTPlans, key(account, p.RestoreTestingPlanName)) != nil {
			return errorf(ErrAlreadyExists, "A restore testing plan named %s already exists.", p.RestoreTestingPlanName)
		}
		if n >= MaxRestoreTestingPlans {
			return errorf(ErrLimitExceeded, "The number of restore testing plans in the account would exceed %d.", MaxRestoreTestingPlans)
		}
		out = p
		if len(cin.Tags) > 0 {
			if err := putJSON(tx, spaceTags, []byte(p.RestoreTestingPlanArn), cin.Tags); err != nil {
				return err
			}
		}
		return putJSON(tx, spaceRTPlans, key(account, p.RestoreTestingPlanName), p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var errStopScan = errors.New("stop scan")

// samePlanRequest reports whether a stored plan is what p asks for, but
// for what the catalog assigns.
func samePlanRequest(stored, p *RestoreTestingPlan) bool {
	a, b := *stored, *p
	a.RestoreTestingPlanArn, a.CreationTime, a.LastUpdateTime, a.LastExecutionTime = "", time.Time{}, nil, nil
	b.RestoreTestingPlanArn, b.CreationTime = "", time.Time{}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func cloneRPSelection(s RecoveryPointSelection) RecoveryPointSelection {
	s.IncludeVaults = slices.Clone(s.IncludeVaults)
	s.ExcludeVaults = slices.Clone(s.ExcludeVaults)
	s.RecoveryPointTypes = slices.Clone(s.RecoveryPointTypes)
	if s.SelectionWindowDays != nil {
		d := *s.SelectionWindowDays
		s.SelectionWindowDays = &d
	}
	return s
}

func getRTPlan(tx meta.Tx, account, name string) (*RestoreTestingPlan, error) {
	p := &RestoreTestingPlan{}
	ok := false
	if restoreTestingNameRE.MatchString(name) {
		var err error
		if ok, err = getJSON(tx, spaceRTPlans, key(account, name), p); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Restore testing plan %s does not exist.", name)
	}
	return p, nil
}

// GetRestoreTestingPlan returns a plan of the account by name.
func (c *Catalog) GetRestoreTestingPlan(ctx context.Context, account, name string) (*RestoreTestingPlan, error) {
	var out *RestoreTestingPlan
	err := c.view(ctx, func(tx meta.Tx) error {
		var err error
		out, err = getRTPlan(tx, account, name)
		return err
	})
	return out, err
}

// ListRestoreTestingPlans returns the account's plans, oldest first.
func (c *Catalog) ListRestoreTestingPlans(ctx context.Context, account string) ([]*RestoreTestingPlan, error) {
	var out []*RestoreTestingPlan
	err := c.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceRTPlans, key(account), func(_, v []byte) error {
			p := &RestoreTestingPlan{}
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationTime.Before(out[j].CreationTime) })
	return out, err
}

// UpdateRestoreTestingPlan changes the members u sets and validates the
// result.
func (c *Catalog) UpdateRestoreTestingPlan(ctx context.Context, account, name string, u RestoreTestingPlanUpdate) (*RestoreTestingPlan, error) {
	now := c.clock()
	var out *RestoreTestingPlan
	err := c.update(ctx, func(tx meta.Tx) error {
		p, err := getRTPlan(tx, account, name)
		if err != nil {
			return err
		}
		if u.ScheduleExpression != nil {
			p.ScheduleExpression = *u.ScheduleExpression
		}
		if u.ScheduleExpressionTimezone != nil {
			p.ScheduleExpressionTimezone = *u.ScheduleExpressionTimezone
			if p.ScheduleExpressionTimezone == "" {
				p.ScheduleExpressionTimezone = DefaultTimezone
			}
		}
		if u.StartWindowHours != nil {
			p.StartWindowHours = *u.StartWindowHours
		}
		if s := u.RecoveryPointSelection; s != nil {
			r := &p.RecoveryPointSelection
			if s.Algorithm != "" {
				r.Algorithm = s.Algorithm
			}
			if s.IncludeVaults != nil {
				r.IncludeVaults = slices.Clone(s.IncludeVaults)
			}
			if s.ExcludeVaults != nil {
				r.ExcludeVaults = slices.Clone(s.ExcludeVaults)
			}
			if s.RecoveryPointTypes != nil {
				r.RecoveryPointTypes = slices.Clone(s.RecoveryPointTypes)
			}
			if s.SelectionWindowDays != nil {
				d := *s.SelectionWindowDays
				r.SelectionWindowDays = &d
			}
		}
		if err := p.validate(); err != nil {
			return err
		}
		p.LastUpdateTime = &now
		out = p
		return putJSON(tx, spaceRTPlans, key(account, name), p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRestoreTestingPlan deletes a plan that has no selections left, as
// AWS requires, and its tags.
func (c *Catalog) DeleteRestoreTestingPlan(ctx context.Context, account, name string) error {
	return c.update(ctx, func(tx meta.Tx) error {
		p, err := getRTPlan(tx, account, name)
		if err != nil {
			return err
		}
		has := false
		err = scan(tx, spaceRTSelections, key(account, name), func(_, _ []byte) error { has = true; return errStopScan })
		if err != nil && err != errStopScan {
			return err
		}
		if has {
			return errorf(ErrInvalidRequest, "Restore testing plan %s cannot be deleted while it has restore testing selections; delete them first.", name)
		}
		if err := tx.Delete(spaceTags, []byte(p.RestoreTestingPlanArn)); err != nil {
			return err
		}
		return tx.Delete(spaceRTPlans, key(account, name))
	})
}

// validate checks a selection.
func (s *RestoreTestingSelection) validate() error {
	if s.IamRoleArn == "" {
		return errorf(ErrMissingParameter, "Missing required parameter IamRoleArn.")
	}
	if !roleARNRE.MatchString(s.IamRoleArn) {
		return errorf(ErrInvalidParameter, "Invalid IamRoleArn %q: it must be the ARN of an IAM role.", s.IamRoleArn)
	}
	if s.ProtectedResourceType == "" {
		return errorf(ErrMissingParameter, "Missing required parameter ProtectedResourceType.")
	}
	if !resourceTypeRE.MatchString(s.ProtectedResourceType) {
		return errorf(ErrInvalidParameter, "Invalid ProtectedResourceType %q.", s.ProtectedResourceType)
	}
	wildcard := len(s.ProtectedResourceArns) == 1 && s.ProtectedResourceArns[0] == "*"
	conds := s.ProtectedResourceConditions != nil && (len(s.ProtectedResourceConditions.StringEquals) > 0 || len(s.ProtectedResourceConditions.StringNotEquals) > 0)
	switch {
	case len(s.ProtectedResourceArns) == 0 && !conds:
		return errorf(ErrMissingParameter, "A restore testing selection needs ProtectedResourceArns or ProtectedResourceConditions.")
	case conds && len(s.ProtectedResourceArns) > 0 && !wildcard:
		return errorf(ErrInvalidParameter, "A restore testing selection can have ProtectedResourceArns or ProtectedResourceConditions, not both (conditions go with ProtectedResourceArns [\"*\"] only).")
	case len(s.ProtectedResourceArns) > maxRestoreTestingProtectedResources:
		return errorf(ErrLimitExceeded, "A restore testing selection can name at most %d resources.", maxRestoreTestingProtectedResources)
	}
	if !wildcard {
		for _, a := range s.ProtectedResourceArns {
			if !strings.HasPrefix(a, "arn:") {
				return errorf(ErrInvalidParameter, "Invalid ProtectedResourceArns entry %q: it must be \"*\" alone or resource ARNs.", a)
			}
		}
	}
	if c := s.ProtectedResourceConditions; c != nil {
		for _, kv := range slices.Concat(c.StringEquals, c.StringNotEquals) {
			if !strings.HasPrefix(kv.Key, restoreTestingConditionKeyPrefix) || len(kv.Key) == len(restoreTestingConditionKeyPrefix) {
				return errorf(ErrInvalidParameter, "Invalid condition key %q: it must be %sKEY.", kv.Key, restoreTestingConditionKeyPrefix)
			}
		}
	}
	if w := s.ValidationWindowHours; w != nil && (*w < 0 || *w > maxValidationWindowHours) {
		return errorf(ErrInvalidParameter, "ValidationWindowHours must be from 0 to %d (got %d).", maxValidationWindowHours, *w)
	}
	for k := range s.RestoreMetadataOverrides {
		// The overrides are kept to be given to every restore the
		// selection starts; a password would be kept in the clear.
		if IsSecretMetadata(k) {
			return errorf(ErrInvalidParameter, "RestoreMetadataOverrides cannot hold %s: restore testing keeps its overrides, and passwords are never stored.", k)
		}
	}
	return nil
}

// Matches reports whether the selection takes the resource with the given
// ARN and tags (its type is the caller's to check).
func (s *RestoreTestingSelection) Matches(arn string, tags map[string]string) bool {
	if len(s.ProtectedResourceArns) > 0 && !slices.Contains(s.ProtectedResourceArns, "*") && !slices.Contains(s.ProtectedResourceArns, arn) {
		return false
	}
	if c := s.ProtectedResourceConditions; c != nil {
		for _, kv := range c.StringEquals {
			if v, ok := tags[tagKey(kv.Key)]; !ok || v != kv.Value {
				return false
			}
		}
		for _, kv := range c.StringNotEquals {
			if v, ok := tags[tagKey(kv.Key)]; ok && v == kv.Value {
				return false
			}
		}
	}
	return true
}

// CreateRestoreTestingSelection adds a selection to a plan.
func (c *Catalog) CreateRestoreTestingSelection(ctx context.Context, account, planName string, s RestoreTestingSelection, creatorRequestID string) (*RestoreTestingSelection, *RestoreTestingPlan, error) {
	if err := validateRestoreTestingName("RestoreTestingSelectionName", s.RestoreTestingSelectionName); err != nil {
		return nil, nil, err
	}
	if err := validateCreatorRequestID(creatorRequestID); err != nil {
		return nil, nil, err
	}
	if err := s.validate(); err != nil {
		return nil, nil, err
	}
	s.RestoreTestingPlanName, s.CreatorRequestId, s.CreationTime, s.UpdateTime = planName, creatorRequestID, c.clock(), nil
	var plan *RestoreTestingPlan
	err := c.update(ctx, func(tx meta.Tx) error {
		var err error
		if plan, err = getRTPlan(tx, account, planName); err != nil {
			return err
		}
		n := 0
		err = scan(tx, spaceRTSelections, key(account, planName), func(_, v []byte) error {
			other := &RestoreTestingSelection{}
			if err := json.Unmarshal(v, other); err != nil {
				return err
			}
			n++
			if other.RestoreTestingSelectionName == s.RestoreTestingSelectionName {
				return errorf(ErrAlreadyExists, "A restore testing selection named %s already exists in restore testing plan %s.", s.RestoreTestingSelectionName, planName)
			}
			if creatorRequestID != "" && other.CreatorRequestId == creatorRequestID {
				return &Error{Kind: ErrAlreadyExists, Message: "A restore testing selection with the same CreatorRequestId already exists.", ARN: plan.RestoreTestingPlanArn}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n >= MaxRestoreTestingSelectionsPerPlan {
			return errorf(ErrLimitExceeded, "A restore testing plan can have at most %d selections.", MaxRestoreTestingSelectionsPerPlan)
		}
		return putJSON(tx, spaceRTSelections, key(account, planName, s.RestoreTestingSelectionName), &s)
	})
	if err != nil {
		return nil, nil, err
	}
	return &s, plan, nil
}

func getRTSelection(tx meta.Tx, account, planName, name string) (*RestoreTestingSelection, error) {
	s := &RestoreTestingSelection{}
	ok := false
	if restoreTestingNameRE.MatchString(name) {
		var err error
		if ok, err = getJSON(tx, spaceRTSelections, key(account, planName, name), s); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Restore testing selection %s of restore testing plan %s does not exist.", name, planName)
	}
	return s, nil
}

// GetRestoreTestingSelection returns a selection of a plan.
func (c *Catalog) GetRestoreTestingSelection(ctx context.Context, account, planName, name string) (*RestoreTestingSelection, error) {
	var out *RestoreTestingSelection
	err := c.view(ctx, func(tx meta.Tx) error {
		if _, err := getRTPlan(tx, account, planName); err != nil {
			return err
		}
		var err error
		out, err = getRTSelection(tx, account, planName, name)
		return err
	})
	return out, err
}

// ListRestoreTestingSelections returns a plan's selections, oldest first.
func (c *Catalog) ListRestoreTestingSelections(ctx context.Context, account, planName string) ([]*RestoreTestingSelection, error) {
	var out []*RestoreTestingSelection
	err := c.view(ctx, func(tx meta.Tx) error {
		if _, err := getRTPlan(tx, account, planName); err != nil {
			return err
		}
		return scan(tx, spaceRTSelections, key(account, planName), func(_, v []byte) error {
			s := &RestoreTestingSelection{}
			if err := json.Unmarshal(v, s); err != nil {
				return err
			}
			out = append(out, s)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationTime.Before(out[j].CreationTime) })
	return out, err
}

// UpdateRestoreTestingSelection changes the members u sets and validates
// the result.
func (c *Catalog) UpdateRestoreTestingSelection(ctx context.Context, account, planName, name string, u RestoreTestingSelectionUpdate) (*RestoreTestingSelection, *RestoreTestingPlan, error) {
	now := c.clock()
	var out *RestoreTestingSelection
	var plan *RestoreTestingPlan
	err := c.update(ctx, func(tx meta.Tx) error {
		var err error
		if plan, err = getRTPlan(tx, account, planName); err != nil {
			return err
		}
		s, err := getRTSelection(tx, account, planName, name)
		if err != nil {
			return err
		}
		if u.IamRoleArn != nil {
			s.IamRoleArn = *u.IamRoleArn
		}
		if u.ProtectedResourceArns != nil || u.ProtectedResourceConditions != nil {
			s.ProtectedResourceArns = slices.Clone(u.ProtectedResourceArns)
			s.ProtectedResourceConditions = u.ProtectedResourceConditions
		}
		if u.RestoreMetadataOverrides != nil {
			s.RestoreMetadataOverrides = maps.Clone(u.RestoreMetadataOverrides)
		}
		if u.ValidationWindowHours != nil {
			w := *u.ValidationWindowHours
			s.ValidationWindowHours = &w
		}
		if err := s.validate(); err != nil {
			return err
		}
		s.UpdateTime = &now
		out = s
		return putJSON(tx, spaceRTSelections, key(account, planName, name), s)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, plan, nil
}

// DeleteRestoreTestingSelection removes a selection from a plan.
func (c *Catalog) DeleteRestoreTestingSelection(ctx context.Context, account, planName, name string) error {
	return c.update(ctx, func(tx meta.Tx) error {
		if _, err := getRTPlan(tx, account, planName); err != nil {
			return err
		}
		if _, err := getRTSelection(tx, account, planName, name); err != nil {
			return err
		}
		return tx.Delete(spaceRTSelections, key(account, planName, name))
	})
}

// PutRestoreValidationResult records the outcome of a validation of a
// completed restore job: a restore not ended has nothing to validate yet.
func (s *Service) PutRestoreValidationResult(ctx context.Context, account, jobID, status, message string) error {
	switch status {
	case "":
		return errorf(ErrMissingParameter, "Missing required parameter ValidationStatus.")
	case ValidationFailed, ValidationSuccessful, ValidationTimedOut, ValidationValidating:
	default:
		return errorf(ErrInvalidParameter, "Invalid ValidationStatus %q: it must be FAILED, SUCCESSFUL, TIMED_OUT or VALIDATING.", status)
	}
	now := s.cat.clock()
	return s.cat.update(ctx, func(tx meta.Tx) error {
		j := &RestoreJob{}
		ok := false
		if jobID != "" && !strings.Contains(jobID, "/") {
			var err error
			if ok, err = getJSON(tx, spaceRestoreJobs, key(account, jobID), j); err != nil {
				return err
			}
		}
		if !ok {
			return errorf(ErrNotFound, "Restore job %s does not exist.", jobID)
		}
		if j.Status != RestoreCompleted {
			return errorf(ErrInvalidRequest, "Restore job %s is %s: only a completed restore can be validated.", jobID, j.Status)
		}
		j.ValidationStatus, j.ValidationStatusMessage = status, message
		if err := putRestoreJob(tx, j); err != nil {
			return err
		}
		// A final result ends the validation: as AWS Backup does, the
		// scratch target goes now rather than when the window ends.
		if status == ValidationSuccessful || status == ValidationFailed {
			return dueSooner(tx, j, now)
		}
		return nil
	})
}

// restoreTestingPlanOfARN finds the plan an ARN's last part (NAME-UUID)
// names.
func restoreTestingPlanOfARN(tx meta.Tx, account, arn, last string) bool {
	const suffix = 37 // "-" and a UUID
	if len(last) <= suffix {
		return false
	}
	p, err := getRTPlan(tx, account, last[:len(last)-suffix])
	return err == nil && p.RestoreTestingPlanArn == arn
}

// ChoosePoint picks the recovery point a restore test of one resource
// restores, among that resource's points: a completed point of a vault
// the selection takes, of a type it lists, created within the last
// SelectionWindowDays before now; the newest (LATEST_WITHIN_WINDOW) or
// one drawn by pick, which returns a number in [0, n)
// (RANDOM_WITHIN_WINDOW). It returns nil when no point qualifies.
func (s *RecoveryPointSelection) ChoosePoint(points []*RecoveryPoint, now time.Time, pick func(n int) int) *RecoveryPoint {
	days := int64(defaultSelectionWindowDays)
	if s.SelectionWindowDays != nil {
		days = *s.SelectionWindowDays
	}
	since := now.Add(-time.Duration(days) * 24 * time.Hour)
	var in []*RecoveryPoint
	for _, p := range points {
		typ := RecoveryPointTypeSnapshot
		if p.IsContinuous() {
			typ = RecoveryPointTypeContinuous
		}
		if p.Status == PointCompleted && slices.Contains(s.RecoveryPointTypes, typ) && s.MatchesVault(p.VaultARN) &&
			!p.CreationDate.Before(since) && !p.CreationDate.After(now) {
			in = append(in, p)
		}
	}
	if len(in) == 0 {
		return nil
	}
	// Newest first, and a stable order for the draw whatever order the
	// points came in.
	sort.Slice(in, func(i, j int) bool {
		if !in[i].CreationDate.Equal(in[j].CreationDate) {
			return in[i].CreationDate.After(in[j].CreationDate)
		}
		return in[i].ARN < in[j].ARN
	})
	if s.Algorithm == AlgorithmRandomWithinWindow {
		return in[pick(len(in))]
	}
	return in[0]
}
