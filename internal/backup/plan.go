package backup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/meta"
)

// Plan is a backup plan document. Its fields are named as AWS Backup's
// BackupPlan and BackupPlanInput, so that its JSON is the API's.
type Plan struct {
	BackupPlanName         string
	Rules                  []Rule
	AdvancedBackupSettings []AdvancedBackupSetting `json:",omitempty"`
	// ScanSettings is an AWS Backup feature Bulwark does not have; a plan
	// naming it is refused rather than silently changed.
	ScanSettings json.RawMessage `json:",omitempty"`
}

// Rule is a backup rule of a plan.
type Rule struct {
	RuleName                   string
	TargetBackupVaultName      string
	ScheduleExpression         string            `json:",omitempty"`
	ScheduleExpressionTimezone string            `json:",omitempty"`
	StartWindowMinutes         *int64            `json:",omitempty"`
	CompletionWindowMinutes    *int64            `json:",omitempty"`
	Lifecycle                  *Lifecycle        `json:",omitempty"`
	RecoveryPointTags          map[string]string `json:",omitempty"`
	RuleID                     string            `json:"RuleId,omitempty"`
	CopyActions                []CopyAction      `json:",omitempty"`
	EnableContinuousBackup     *bool             `json:",omitempty"`

	// Features of AWS Backup that Bulwark does not have; refused when set.
	TargetLogicallyAirGappedBackupVaultArn json.RawMessage `json:",omitempty"`
	IndexActions                           json.RawMessage `json:",omitempty"`
	ScanActions                            json.RawMessage `json:",omitempty"`
}

// Lifecycle says when recovery points move to cold storage and expire.
type Lifecycle struct {
	MoveToColdStorageAfterDays          *int64          `json:",omitempty"`
	DeleteAfterDays                     *int64          `json:",omitempty"`
	OptInToArchiveForSupportedResources *bool           `json:",omitempty"`
	DeleteAfterEvent                    json.RawMessage `json:",omitempty"`
}

// CopyAction copies a rule's recovery points to another vault.
type CopyAction struct {
	DestinationBackupVaultArn string
	Lifecycle                 *Lifecycle `json:",omitempty"`
}

// AdvancedBackupSetting is kept and returned as given.
type AdvancedBackupSetting struct {
	ResourceType  string            `json:",omitempty"`
	BackupOptions map[string]string `json:",omitempty"`
}

// Defaults of a rule, as AWS Backup fills them in.
const (
	DefaultScheduleExpression = "cron(0 5 ? * * *)"
	DefaultTimezone           = "Etc/UTC"
	minStartWindow            = 60
	// maxWindow keeps window arithmetic far from overflow; a hundred
	// years is no constraint on a real plan.
	maxWindow = 100 * 366 * 24 * 60
	// maxContinuousRetention is the longest retention of continuous
	// backups (point-in-time restore) AWS Backup allows, in days.
	maxContinuousRetention = 35
	// coldStorageMinimum is how long a recovery point must stay in cold
	// storage before it may be deleted, in days.
	coldStorageMinimum = 90
)

var (
	planNameRE = regexp.MustCompile(`^[a-zA-Z0-9\-\_\.]{1,50}$`)
	ruleNameRE = regexp.MustCompile(`^[a-zA-Z0-9\-\_\.]{1,50}$`)
	vaultARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:backup:[a-z0-9-]+:[0-9]{12}:backup-vault:[a-zA-Z0-9\-\_]{2,50}$`)
)

// ValidatePlan checks a plan document as AWS Backup does, without looking
// at the store (so not whether its vaults exist), and fills in the
// defaults of its rules. It returns the first problem.
func ValidatePlan(p *Plan) error {
	if p.BackupPlanName == "" {
		return errorf(ErrMissingParameter, "Missing required parameter BackupPlanName.")
	}
	if !planNameRE.MatchString(p.BackupPlanName) {
		return errorf(ErrInvalidParameter, "Invalid backup plan name %q: it must contain 1 to 50 alphanumeric or '-_.' characters.", p.BackupPlanName)
	}
	if len(p.ScanSettings) > 0 && string(p.ScanSettings) != "null" {
		return errorf(ErrInvalidParameter, "ScanSettings are not supported by Bulwark.")
	}
	if len(p.Rules) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter Rules: a backup plan needs at least one rule.")
	}
	if len(p.Rules) > MaxRulesPerPlan {
		return errorf(ErrLimitExceeded, "A backup plan can have at most %d rules.", MaxRulesPerPlan)
	}
	names := map[string]bool{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if err := validateRule(r); err != nil {
			return err
		}
		if names[r.RuleName] {
			return errorf(ErrInvalidParameter, "Rule names must be unique within a backup plan: %s appears twice.", r.RuleName)
		}
		names[r.RuleName] = true
	}
	return nil
}

func set(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

func validateRule(r *Rule) error {
	if r.RuleName == "" {
		return errorf(ErrMissingParameter, "Missing required parameter RuleName.")
	}
	if !ruleNameRE.MatchString(r.RuleName) {
		return errorf(ErrInvalidParameter, "Invalid rule name %q: it must contain 1 to 50 alphanumeric or '-_.' characters.", r.RuleName)
	}
	if r.TargetBackupVaultName == "" {
		return errorf(ErrMissingParameter, "Missing required parameter TargetBackupVaultName in rule %s.", r.RuleName)
	}
	if !vaultNameRE.MatchString(r.TargetBackupVaultName) {
		return errorf(ErrInvalidParameter, "Invalid backup vault name %q in rule %s.", r.TargetBackupVaultName, r.RuleName)
	}
	switch {
	case set(r.TargetLogicallyAirGappedBackupVaultArn):
		return errorf(ErrInvalidParameter, "Logically air-gapped vaults are not supported by Bulwark.")
	case set(r.IndexActions):
		return errorf(ErrInvalidParameter, "IndexActions are not supported by Bulwark.")
	case set(r.ScanActions):
		return errorf(ErrInvalidParameter, "ScanActions are not supported by Bulwark.")
	}
	if r.ScheduleExpression == "" {
		r.ScheduleExpression = DefaultScheduleExpression
	}
	if _, err := schedule.Parse(r.ScheduleExpression); err != nil {
		return errorf(ErrInvalidParameter, "Rule %s: %v", r.RuleName, err)
	}
	if r.ScheduleExpressionTimezone == "" {
		r.ScheduleExpressionTimezone = DefaultTimezone
	}
	// LoadLocation reads files for relative names; a time zone is a name.
	if strings.Contains(r.ScheduleExpressionTimezone, "..") || strings.HasPrefix(r.ScheduleExpressionTimezone, "/") {
		return errorf(ErrInvalidParameter, "Invalid ScheduleExpressionTimezone %q.", r.ScheduleExpressionTimezone)
	}
	if _, err := time.LoadLocation(r.ScheduleExpressionTimezone); err != nil || strings.EqualFold(r.ScheduleExpressionTimezone, "local") {
		return errorf(ErrInvalidParameter, "Invalid ScheduleExpressionTimezone %q.", r.ScheduleExpressionTimezone)
	}
	if r.StartWindowMinutes == nil {
		v := int64(defaultStartWindow)
		r.StartWindowMinutes = &v
	}
	if *r.StartWindowMinutes > maxWindow || r.CompletionWindowMinutes != nil && *r.CompletionWindowMinutes > maxWindow {
		return errorf(ErrInvalidParameter, "Windows must be at most %d minutes (rule %s).", maxWindow, r.RuleName)
	}
	if *r.StartWindowMinutes < minStartWindow {
		return errorf(ErrInvalidParameter, "StartWindowMinutes must be at least %d minutes (rule %s has %d).", minStartWindow, r.RuleName, *r.StartWindowMinutes)
	}
	if r.CompletionWindowMinutes == nil {
		v := int64(defaultCompleteWindow)
		if v < *r.StartWindowMinutes+60 {
			v = *r.StartWindowMinutes + 60
		}
		r.CompletionWindowMinutes = &v
	}
	if *r.CompletionWindowMinutes < *r.StartWindowMinutes+60 {
		return errorf(ErrInvalidParameter, "CompletionWindowMinutes must be at least 60 minutes more than StartWindowMinutes (rule %s has %d and %d).", r.RuleName, *r.CompletionWindowMinutes, *r.StartWindowMinutes)
	}
	if err := validateLifecycle(r.Lifecycle, "rule "+r.RuleName); err != nil {
		return err
	}
	if r.EnableContinuousBackup != nil && *r.EnableContinuousBackup && r.Lifecycle != nil {
		if r.Lifecycle.MoveToColdStorageAfterDays != nil {
			return errorf(ErrInvalidParameter, "Continuous backups cannot move to cold storage (rule %s).", r.RuleName)
		}
		if d := r.Lifecycle.DeleteAfterDays; d != nil && *d > maxContinuousRetention {
			return errorf(ErrInvalidParameter, "Continuous backups can be retained for at most %d days (rule %s).", maxContinuousRetention, r.RuleName)
		}
	}
	if err := validateTags(r.RecoveryPointTags); err != nil {
		return err
	}
	for i, ca := range r.CopyActions {
		if ca.DestinationBackupVaultArn == "" {
			return errorf(ErrMissingParameter, "Missing required parameter DestinationBackupVaultArn in copy action %d of rule %s.", i+1, r.RuleName)
		}
		if !vaultARNRE.MatchString(ca.DestinationBackupVaultArn) {
			return errorf(ErrInvalidParameter, "Invalid DestinationBackupVaultArn %q in rule %s.", ca.DestinationBackupVaultArn, r.RuleName)
		}
		if err := validateLifecycle(ca.Lifecycle, "a copy action of rule "+r.RuleName); err != nil {
			return err
		}
	}
	return nil
}

func validateLifecycle(l *Lifecycle, where string) error {
	if l == nil {
		return nil
	}
	if set(l.DeleteAfterEvent) {
		return errorf(ErrInvalidParameter, "DeleteAfterEvent is not supported by Bulwark.")
	}
	if d := l.DeleteAfterDays; d != nil && *d < 1 {
		return errorf(ErrInvalidParameter, "DeleteAfterDays must be at least 1 (in %s).", where)
	}
	if m := l.MoveToColdStorageAfterDays; m != nil && *m < 1 {
		return errorf(ErrInvalidParameter, "MoveToColdStorageAfterDays must be at least 1 (in %s).", where)
	}
	if d, m := l.DeleteAfterDays, l.MoveToColdStorageAfterDays; d != nil && m != nil && *d < *m+coldStorageMinimum {
		return errorf(ErrInvalidParameter, "DeleteAfterDays must be at least %d days greater than MoveToColdStorageAfterDays (in %s: %d and %d).", coldStorageMinimum, where, *d, *m)
	}
	return nil
}

// maxPlanJSON bounds a plan template given to PlanFromJSON.
const maxPlanJSON = 1 << 20

// PlanFromJSON parses and validates a backup plan template, the
// BackupPlanTemplateJson of GetBackupPlanFromJSON: a BackupPlan document.
func PlanFromJSON(doc string) (*Plan, error) {
	if strings.TrimSpace(doc) == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter BackupPlanTemplateJson.")
	}
	if len(doc) > maxPlanJSON {
		return nil, errorf(ErrLimitExceeded, "The backup plan template exceeds %d bytes.", maxPlanJSON)
	}
	p, err := decodePlan([]byte(doc))
	if err != nil {
		return nil, err
	}
	if err := ValidatePlan(p); err != nil {
		return nil, err
	}
	return p, nil
}

// decodePlan reads a plan document strictly: unknown members and trailing
// data are mistakes worth reporting.
func decodePlan(b []byte) (*Plan, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	p := &Plan{}
	if err := d.Decode(p); err != nil {
		return nil, errorf(ErrInvalidParameter, "Invalid backup plan JSON: %v", err)
	}
	if d.More() {
		return nil, errorf(ErrInvalidParameter, "Invalid backup plan JSON: data after the document.")
	}
	return p, nil
}

// planRecord is what the store keeps of a plan besides its versions.
type planRecord struct {
	ID               string
	ARN              string
	CreatorRequestID string     `json:",omitempty"`
	CreationDate     time.Time  // of the first version
	DeletionDate     *time.Time `json:",omitempty"`
	VersionID        string     // current version
	Seq              uint64     // key of the current version
}

// PlanVersion is one version of a plan, as GetBackupPlan shows it.
type PlanVersion struct {
	BackupPlanID     string
	BackupPlanARN    string
	VersionID        string
	CreatorRequestID string
	CreationDate     time.Time // of this version
	DeletionDate     *time.Time
	Plan             Plan
}

// PlanARN returns the ARN of a plan of the catalog's region.
func (c *Catalog) PlanARN(account, id string) string {
	return "arn:aws:backup:" + c.region + ":" + account + ":backup-plan:" + id
}

// newVersionID makes a version ID of the shape AWS uses: the base64 of a
// UUID's text.
func newVersionID() string {
	return base64.StdEncoding.EncodeToString([]byte(newUUID()))
}

// CreatePlanInput describes a plan to create.
type CreatePlanInput struct {
	Plan             Plan
	Tags             map[string]string
	CreatorRequestID string
}

// CreatePlan validates and stores a new plan; its first version is
// current.
func (c *Catalog) CreatePlan(ctx context.Context, account string, in CreatePlanInput) (*PlanVersion, error) {
	p := in.Plan
	p.Rules = append([]Rule(nil), p.Rules...)
	if err := ValidatePlan(&p); err != nil {
		return nil, err
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, err
	}
	now := c.clock()
	rec := &planRecord{ID: newUUID(), CreatorRequestID: in.CreatorRequestID, CreationDate: now, VersionID: newVersionID()}
	rec.ARN = c.PlanARN(account, rec.ID)
	for i := range p.Rules {
		p.Rules[i].RuleID = newUUID()
	}
	err := c.update(ctx, func(tx meta.Tx) error {
		if err := c.ensureDefault(tx, account); err != nil {
			return err
		}
		if err := checkVaults(tx, account, &p); err != nil {
			return err
		}
		n := 0
		err := scan(tx, spacePlans, key(account), func(k, v []byte) error {
			var other planRecord
			if err := json.Unmarshal(v, &other); err != nil {
				return err
			}
			if other.DeletionDate != nil {
				return nil
			}
			n++
			if in.CreatorRequestID != "" && other.CreatorRequestID == in.CreatorRequestID {
				return &Error{Kind: ErrAlreadyExists, Message: "A backup plan with the same CreatorRequestId already exists.", ARN: other.ARN}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n >= MaxPlans {
			return errorf(ErrLimitExceeded, "The number of backup plans in the account would exceed %d.", MaxPlans)
		}
		if len(in.Tags) > 0 {
			if err := putJSON(tx, spaceTags, []byte(rec.ARN), in.Tags); err != nil {
				return err
			}
		}
		return c.putVersion(tx, account, rec, now, &p)
	})
	if err != nil {
		return nil, err
	}
	return &PlanVersion{BackupPlanID: rec.ID, BackupPlanARN: rec.ARN, VersionID: rec.VersionID, CreatorRequestID: rec.CreatorRequestID, CreationDate: now, Plan: p}, nil
}

// putVersion stores p as rec's new current version.
func (c *Catalog) putVersion(tx meta.Tx, account string, rec *planRecord, now time.Time, p *Plan) error {
	seq, err := tx.NextSeq(spaceVersions)
	if err != nil {
		return err
	}
	rec.Seq = seq
	v := &PlanVersion{BackupPlanID: rec.ID, BackupPlanARN: rec.ARN, VersionID: rec.VersionID, CreatorRequestID: rec.CreatorRequestID, CreationDate: now, Plan: *p}
	if err := putJSON(tx, spaceVersions, seqKey(key(account, rec.ID), seq), v); err != nil {
		return err
	}
	return putJSON(tx, spacePlans, key(account, rec.ID), rec)
}

// checkVaults refuses rules whose target vault does not exist.
func checkVaults(tx meta.Tx, account string, p *Plan) error {
	for _, r := range p.Rules {
		if tx.Get(spaceVaults, key(account, r.TargetBackupVaultName)) == nil {
			return errorf(ErrInvalidParameter, "Backup vault %s does not exist (rule %s).", r.TargetBackupVaultName, r.RuleName)
		}
	}
	return nil
}

func getPlan(tx meta.Tx, account, id string) (*planRecord, error) {
	rec := &planRecord{}
	ok, err := false, error(nil)
	if id != "" && !strings.Contains(id, "/") {
		ok, err = getJSON(tx, spacePlans, key(account, id), rec)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Backup plan %s does not exist.", id)
	}
	return rec, nil
}

// livePlan is getPlan refusing deleted plans.
func livePlan(tx meta.Tx, account, id string) (*planRecord, error) {
	rec, err := getPlan(tx, account, id)
	if err == nil && rec.DeletionDate != nil {
		return nil, errorf(ErrNotFound, "Backup plan %s has been deleted.", id)
	}
	return rec, err
}

// versions returns every version of a plan, oldest first.
func versions(tx meta.Tx, account, id string) ([]*PlanVersion, error) {
	var out []*PlanVersion
	err := scan(tx, spaceVersions, key(account, id), func(k, v []byte) error {
		pv := &PlanVersion{}
		if err := json.Unmarshal(v, pv); err != nil {
			return fmt.Errorf("decode plan version %q: %w", k, err)
		}
		out = append(out, pv)
		return nil
	})
	return out, err
}

// GetPlan returns a plan's current version, or the version named.
func (c *Catalog) GetPlan(ctx context.Context, account, id, versionID string) (*PlanVersion, error) {
	var out *PlanVersion
	err := c.view(ctx, func(tx meta.Tx) error {
		rec, err := getPlan(tx, account, id)
		if err != nil {
			return err
		}
		if versionID == "" {
			pv := &PlanVersion{}
			if _, err := getJSON(tx, spaceVersions, seqKey(key(account, id), rec.Seq), pv); err != nil {
				return err
			}
			out = pv
		} else {
			vs, err := versions(tx, account, id)
			if err != nil {
				return err
			}
			for _, v := range vs {
				if v.VersionID == versionID {
					out = v
				}
			}
			if out == nil {
				return errorf(ErrNotFound, "Version %s of backup plan %s does not exist.", versionID, id)
			}
		}
		out.DeletionDate = rec.DeletionDate
		return nil
	})
	return out, err
}

// UpdatePlan replaces a plan's document with a new current version; the
// old versions stay readable. Rules keep their RuleId across versions by
// name.
func (c *Catalog) UpdatePlan(ctx context.Context, account, id string, p Plan) (*PlanVersion, error) {
	p.Rules = append([]Rule(nil), p.Rules...)
	if err := ValidatePlan(&p); err != nil {
		return nil, err
	}
	now := c.clock()
	var out *PlanVersion
	err := c.update(ctx, func(tx meta.Tx) error {
		if err := c.ensureDefault(tx, account); err != nil {
			return err
		}
		rec, err := livePlan(tx, account, id)
		if err != nil {
			return err
		}
		if err := checkVaults(tx, account, &p); err != nil {
			return err
		}
		cur := &PlanVersion{}
		if _, err := getJSON(tx, spaceVersions, seqKey(key(account, id), rec.Seq), cur); err != nil {
			return err
		}
		ids := map[string]string{}
		for _, r := range cur.Plan.Rules {
			ids[r.RuleName] = r.RuleID
		}
		for i := range p.Rules {
			if rid, ok := ids[p.Rules[i].RuleName]; ok {
				p.Rules[i].RuleID = rid
			} else {
				p.Rules[i].RuleID = newUUID()
			}
		}
		rec.VersionID = newVersionID()
		if err := c.putVersion(tx, account, rec, now, &p); err != nil {
			return err
		}
		out = &PlanVersion{BackupPlanID: rec.ID, BackupPlanARN: rec.ARN, VersionID: rec.VersionID, CreatorRequestID: rec.CreatorRequestID, CreationDate: now, Plan: p}
		return nil
	})
	return out, err
}

// DeletePlan deletes a plan that has no selections left. Its versions
// stay, marked deleted, as AWS keeps deleted plans listable.
func (c *Catalog) DeletePlan(ctx context.Context, account, id string) (*PlanVersion, error) {
	now := c.clock()
	var out *PlanVersion
	err := c.update(ctx, func(tx meta.Tx) error {
		rec, err := livePlan(tx, account, id)
		if err != nil {
			return err
		}
		has := false
		errStop := errors.New("stop")
		err = scan(tx, spaceSelections, key(account, id), func(k, v []byte) error { has = true; return errStop })
		if err != nil && err != errStop {
			return err
		}
		if has {
			return errorf(ErrInvalidRequest, "Backup plan %s cannot be deleted while it has resource selections; delete them first.", id)
		}
		rec.DeletionDate = &now
		if err := tx.Delete(spaceTags, []byte(rec.ARN)); err != nil {
			return err
		}
		out = &PlanVersion{BackupPlanID: rec.ID, BackupPlanARN: rec.ARN, VersionID: rec.VersionID, DeletionDate: &now}
		return putJSON(tx, spacePlans, key(account, id), rec)
	})
	return out, err
}

// ListPlans returns the current version of each of the account's plans,
// deleted ones too when includeDeleted, oldest first.
func (c *Catalog) ListPlans(ctx context.Context, account string, includeDeleted bool) ([]*PlanVersion, error) {
	var out []*PlanVersion
	err := c.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spacePlans, key(account), func(k, v []byte) error {
			rec := &planRecord{}
			if err := json.Unmarshal(v, rec); err != nil {
				return err
			}
			if rec.DeletionDate != nil && !includeDeleted {
				return nil
			}
			pv := &PlanVersion{}
			if _, err := getJSON(tx, spaceVersions, seqKey(key(account, rec.ID), rec.Seq), pv); err != nil {
				return err
			}
			pv.CreationDate = rec.CreationDate
			pv.DeletionDate = rec.DeletionDate
			out = append(out, pv)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationDate.Before(out[j].CreationDate) })
	return out, err
}

// ListPlanVersions returns every version of a plan, newest first.
func (c *Catalog) ListPlanVersions(ctx context.Context, account, id string) ([]*PlanVersion, error) {
	var out []*PlanVersion
	err := c.view(ctx, func(tx meta.Tx) error {
		rec, err := getPlan(tx, account, id)
		if err != nil {
			return err
		}
		out, err = versions(tx, account, id)
		for _, v := range out {
			v.DeletionDate = rec.DeletionDate
		}
		return err
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}
