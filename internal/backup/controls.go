package backup

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The controls of Backup Audit Manager that Bulwark evaluates, with AWS's
// names, parameters and defaults
// (https://docs.aws.amazon.com/aws-backup/latest/devguide/controls-and-remediation.html).
// Each control evaluates one kind of target: the region's resources
// (every resource a provider lists and every resource with a recovery
// point), recovery points, backup plans or backup vaults. evaluate.go
// holds what each control checks.

// Control names.
const (
	ControlProtectedByPlan      = "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN"
	ControlPlanFrequency        = "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK"
	ControlPointMinRetention    = "BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK"
	ControlPointEncrypted       = "BACKUP_RECOVERY_POINT_ENCRYPTED"
	ControlManualDeletion       = "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED"
	ControlLastPointCreated     = "BACKUP_LAST_RECOVERY_POINT_CREATED"
	ControlCrossRegion          = "BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION"
	ControlCrossAccount         = "BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT"
	ControlVaultLock            = "BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK"
	ControlRestoreTimeMeetsGoal = "RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"
)

// targetKind is what a control evaluates.
type targetKind int

const (
	targetResources targetKind = iota
	targetPoints
	targetPlans
	targetVaults
)

// The resource types reported for targets that are not resources of a
// provider.
const (
	TypeBackupPlan    = "BackupPlan"
	TypeBackupVault   = "BackupVault"
	TypeRecoveryPoint = "RecoveryPoint"
)

func (k targetKind) String() string {
	return [...]string{"resources", "recovery points", "backup plans", "backup vaults"}[k]
}

// paramDef is a control's input parameter.
type paramDef struct {
	name     string
	def      string // the default; "" for none
	required bool
	check    func(v string) error
}

// controlDef is a control Bulwark evaluates.
type controlDef struct {
	target targetKind
	params []paramDef
	// validate checks the parameters together, defaults filled in.
	validate func(p map[string]string) error
	eval     evalFunc
}

var (
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	accountRE = regexp.MustCompile(`^\d{12}$`)
)

func intParam(lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("it must be a whole number from %d to %d", lo, hi)
		}
		return nil
	}
}

func unitParam(units ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(units, v) {
			return fmt.Errorf("it must be one of %s", strings.Join(units, ", "))
		}
		return nil
	}
}

// listParam checks a comma-separated list of at most 5 entries, as AWS's
// controls take lists.
func listParam(what string, ok func(string) bool) func(string) error {
	return func(v string) error {
		items := splitList(v)
		if len(items) == 0 || len(items) > 5 {
			return fmt.Errorf("it must list 1 to 5 %s, separated by commas", what)
		}
		for _, it := range items {
			if !ok(it) {
				return fmt.Errorf("%q is not a valid entry: it must list %s", it, what)
			}
		}
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ageLimit checks a unit and a value whose range depends on it.
func ageLimit(unitName, valueName string, maxHours, maxDays int) func(map[string]string) error {
	return func(p map[string]string) error {
		hi := maxDays
		if p[unitName] == "hours" {
			hi = maxHours
		}
		if err := intParam(1, hi)(p[valueName]); err != nil {
			return errorf(ErrInvalidParameter, "Invalid value %q of parameter %s with %s %s: %v.", p[valueName], valueName, unitName, p[unitName], err)
		}
		return nil
	}
}

// controls are the controls Bulwark evaluates, by name.
var controls = map[string]*controlDef{
	ControlProtectedByPlan: {target: targetResources, eval: evalProtectedByPlan},
	ControlPlanFrequency: {target: targetPlans, params: []paramDef{
		{name: "requiredFrequencyUnit", def: "days", check: unitParam("hours", "days")},
		{name: "requiredFrequencyValue", def: "1", check: intParam(1, 31)},
		{name: "requiredRetentionDays", def: "35", check: intParam(1, 36500)},
	}, validate: ageLimit("requiredFrequencyUnit", "requiredFrequencyValue", 24, 31), eval: evalPlanFrequency},
	ControlPointMinRetention: {target: targetPoints, params: []paramDef{
		{name: "requiredRetentionDays", def: "35", check: intParam(1, 36500)},
	}, eval: evalPointRetention},
	ControlPointEncrypted: {target: targetPoints, eval: evalPointEncrypted},
	ControlManualDeletion: {target: targetVaults, params: []paramDef{
		{name: "principalArnList", check: listParam("IAM principal ARNs", func(s string) bool { return strings.HasPrefix(s, "arn:") })},
	}, eval: evalManualDeletion},
	ControlLastPointCreated: {target: targetResources, params: []paramDef{
		{name: "recoveryPointAgeUnit", def: "days", check: unitParam("hours", "days")},
		{name: "recoveryPointAgeValue", def: "1", check: intParam(1, 744)},
	}, validate: ageLimit("recoveryPointAgeUnit", "recoveryPointAgeValue", 744, 31), eval: evalLastPoint},
	ControlCrossRegion: {target: targetResources, params: []paramDef{
		{name: "crossRegionList", check: listParam("regions", regionRE.MatchString)},
	}, eval: evalCrossRegion},
	ControlCrossAccount: {target: targetResources, params: []paramDef{
		{name: "crossAccountList", check: listParam("12-digit account IDs", accountRE.MatchString)},
	}, eval: evalCrossAccount},
	ControlVaultLock: {target: targetResources, params: []paramDef{
		{name: "minRetentionDays", def: "1", check: intParam(1, maxLockDays)},
		{name: "maxRetentionDays", check: intParam(1, maxLockDays)},
	}, validate: validateLockParams, eval: evalVaultLock},
	ControlRestoreTimeMeetsGoal: {target: targetResources, params: []paramDef{
		{name: "maxRestoreTime", required: true, check: intParam(1, 43200)},
	}, eval: evalRestoreTime},
}

func validateLockParams(p map[string]string) error {
	if p["maxRetentionDays"] == "" {
		return nil
	}
	lo, _ := strconv.Atoi(p["minRetentionDays"])
	hi, _ := strconv.Atoi(p["maxRetentionDays"])
	if lo > hi {
		return errorf(ErrInvalidParameter, "Parameter minRetentionDays (%d) must not exceed maxRetentionDays (%d).", lo, hi)
	}
	return nil
}

// ControlNames lists the controls Bulwark evaluates, sorted.
func ControlNames() []string {
	return slices.Sorted(maps.Keys(controls))
}

// controlParams returns the parameters of a validated control, defaults
// filled in.
func controlParams(def *controlDef, fc FrameworkControl) map[string]string {
	p := map[string]string{}
	for _, d := range def.params {
		if d.def != "" {
			p[d.name] = d.def
		}
	}
	for _, in := range fc.ControlInputParameters {
		p[in.ParameterName] = in.ParameterValue
	}
	return p
}

// ValidateControls checks a framework's controls: known names, known
// parameters with valid values, and scopes that can apply.
func (a *Audit) ValidateControls(fcs []FrameworkControl) error {
	if len(fcs) == 0 {
		return errorf(ErrMissingParameter, "Missing required parameter FrameworkControls: a framework has at least one control.")
	}
	if len(fcs) > MaxControls {
		return errorf(ErrLimitExceeded, "A framework can have at most %d controls.", MaxControls)
	}
	for _, fc := range fcs {
		if err := a.validateControl(fc); err != nil {
			return err
		}
	}
	return nil
}

func (a *Audit) validateControl(fc FrameworkControl) error {
	if fc.ControlName == "" {
		return errorf(ErrMissingParameter, "Missing required parameter ControlName.")
	}
	def, ok := controls[fc.ControlName]
	if !ok {
		return errorf(ErrInvalidParameter, "Unknown control %q: Bulwark evaluates %s.", fc.ControlName, strings.Join(ControlNames(), ", "))
	}
	seen := map[string]bool{}
	for _, in := range fc.ControlInputParameters {
		i := slices.IndexFunc(def.params, func(d paramDef) bool { return d.name == in.ParameterName })
		if i < 0 {
			return errorf(ErrInvalidParameter, "Control %s has no parameter %q; %s.", fc.ControlName, in.ParameterName, paramList(def))
		}
		if seen[in.ParameterName] {
			return errorf(ErrInvalidParameter, "Parameter %s of control %s is given twice.", in.ParameterName, fc.ControlName)
		}
		seen[in.ParameterName] = true
		if err := def.params[i].check(in.ParameterValue); err != nil {
			return errorf(ErrInvalidParameter, "Invalid value %q of parameter %s of control %s: %v.", in.ParameterValue, in.ParameterName, fc.ControlName, err)
		}
	}
	for _, d := range def.params {
		if d.required && !seen[d.name] {
			return errorf(ErrInvalidParameter, "Control %s needs parameter %s.", fc.ControlName, d.name)
		}
	}
	if def.validate != nil {
		if err := def.validate(controlParams(def, fc)); err != nil {
			return err
		}
	}
	return a.validateScope(fc.ControlName, def, fc.ControlScope)
}

func paramList(def *controlDef) string {
	if len(def.params) == 0 {
		return "it takes no parameters"
	}
	names := make([]string, len(def.params))
	for i, d := range def.params {
		names[i] = d.name
	}
	return "it takes " + strings.Join(names, ", ")
}

func (a *Audit) validateScope(name string, def *controlDef, s *ControlScope) error {
	if s == nil {
		return nil
	}
	if s.ComplianceResourceIds != nil && (len(s.ComplianceResourceIds) < 1 || len(s.ComplianceResourceIds) > 100) {
		return errorf(ErrInvalidParameter, "ComplianceResourceIds of control %s must list 1 to 100 resources.", name)
	}
	if len(s.ComplianceResourceTypes) > 0 && (def.target == targetPlans || def.target == targetVaults) {
		return errorf(ErrInvalidParameter, "Control %s evaluates %s: its scope takes ComplianceResourceIds or Tags, not ComplianceResourceTypes.", name, def.target)
	}
	for _, t := range s.ComplianceResourceTypes {
		if _, ok := a.jobs.providers.ByType(t); !ok {
			return errorf(ErrInvalidParameter, "Invalid ComplianceResourceTypes entry %q of control %s: Bulwark backs up resources of type %s.", t, name, strings.Join(a.jobs.providers.Types(), ", "))
		}
	}
	if err := validateTags(s.Tags); err != nil {
		return err
	}
	return nil
}

// inScope reports whether a target is in a control's scope: of one of the
// types, named by one of the IDs (an ARN, or the name the target is
// known by), and carrying every tag.
func inScope(s *ControlScope, t *target) bool {
	if s == nil {
		return true
	}
	if len(s.ComplianceResourceTypes) > 0 && !slices.Contains(s.ComplianceResourceTypes, t.scopeType) {
		return false
	}
	if len(s.ComplianceResourceIds) > 0 && !slices.ContainsFunc(s.ComplianceResourceIds, func(id string) bool { return slices.Contains(t.ids, id) }) {
		return false
	}
	for k, v := range s.Tags {
		got, ok := t.tags[k]
		if !ok || v != "" && got != v {
			return false
		}
	}
	return true
}
