package backup

// Backup Audit Manager: frameworks (this file), the controls they hold and
// their evaluation (controls.go), report plans and report jobs
// (report.go, report_render.go). AWS evaluates controls with AWS Config;
// Bulwark has none and evaluates them itself over the catalog, when a
// report runs or a caller asks (Audit.EvaluateFramework).

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Keyspaces of Backup Audit Manager.
const (
	spaceFrameworks  = "backup-frameworks"   // account/name → Framework
	spaceReportPlans = "backup-report-plans" // account/name → ReportPlan
	spaceReportJobs  = "backup-report-jobs"  // account/jobID → ReportJob
)

// Quotas of Backup Audit Manager, as AWS's: frameworks and report plans
// per account and region, and controls over all the account's frameworks.
const (
	MaxFrameworks  = 10
	MaxControls    = 50
	MaxReportPlans = 20
)

// Deployment and framework statuses. Bulwark deploys a framework as it
// stores it: there is no AWS Config rule to set up.
const (
	DeploymentCompleted = "COMPLETED"
	FrameworkActive     = "ACTIVE"
)

// The model's pattern of framework and report plan names.
var auditNameRE = regexp.MustCompile(`^[a-zA-Z][_a-zA-Z0-9]{0,255}$`)

// ControlInputParameter is a parameter of a control, by name.
type ControlInputParameter struct {
	ParameterName  string
	ParameterValue string
}

// ControlScope narrows what a control evaluates: resources of these types,
// these resources, and resources with all these tags (an empty value
// matching any value of the key). An empty scope takes everything the
// control evaluates.
type ControlScope struct {
	ComplianceResourceIds   []string          `json:",omitempty"`
	ComplianceResourceTypes []string          `json:",omitempty"`
	Tags                    map[string]string `json:",omitempty"`
}

// FrameworkControl is one control of a framework.
type FrameworkControl struct {
	ControlName            string
	ControlInputParameters []ControlInputParameter `json:",omitempty"`
	ControlScope           *ControlScope           `json:",omitempty"`
}

// Framework is a named set of controls.
type Framework struct {
	FrameworkName        string
	FrameworkArn         string
	FrameworkDescription string `json:",omitempty"`
	FrameworkControls    []FrameworkControl
	CreationTime         time.Time
	DeploymentStatus     string
	FrameworkStatus      string
	IdempotencyToken     string `json:",omitempty"`
	// UpdateToken is the idempotency token of the last update.
	UpdateToken string `json:",omitempty"`
}

// FrameworkInput is what CreateFramework is given.
type FrameworkInput struct {
	FrameworkName        string
	FrameworkDescription string
	FrameworkControls    []FrameworkControl
	FrameworkTags        map[string]string
	IdempotencyToken     string
}

// FrameworkUpdate is what UpdateFramework is given: nil members keep
// their value.
type FrameworkUpdate struct {
	FrameworkDescription *string
	FrameworkControls    []FrameworkControl
	IdempotencyToken     string
}

// ReportWriter delivers a report file into a bucket, as account: the
// server writes it into its object store after asking IAM whether the
// account may put the object. Its errors are shown as the report job's
// StatusMessage.
type ReportWriter interface {
	WriteReport(ctx context.Context, account, bucket, key, contentType string, body []byte) error
}

// AuditConfig configures an Audit.
type AuditConfig struct {
	// Jobs gives the catalog, the providers and the jobs the controls
	// look at, and runs the report jobs in its goroutines.
	Jobs *Service
	// Writer delivers reports; nil fails every report job.
	Writer ReportWriter
	Logger *slog.Logger
}

// Audit is Backup Audit Manager of a region: frameworks of controls that
// it evaluates over the catalog, and report plans whose report jobs write
// their reports into buckets. Its clock is the catalog's.
type Audit struct {
	jobs   *Service
	cat    *Catalog
	writer ReportWriter
	log    *slog.Logger
}

// NewAudit returns the Audit Manager of the job service's region.
func NewAudit(cfg AuditConfig) *Audit {
	a := &Audit{jobs: cfg.Jobs, cat: cfg.Jobs.cat, writer: cfg.Writer, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

// FrameworkARNPrefix is what the ARNs of the account's frameworks start
// with; a framework's ARN is the prefix, its name, "-" and a UUID, so that
// a framework made again under a deleted one's name is another resource.
func (a *Audit) FrameworkARNPrefix(account string) string {
	return "arn:aws:backup:" + a.cat.region + ":" + account + ":framework:"
}

func validateAuditName(what, name string) error {
	if name == "" {
		return errorf(ErrMissingParameter, "Missing required parameter %s.", what)
	}
	if !auditNameRE.MatchString(name) {
		return errorf(ErrInvalidParameter, "Invalid %s %q: it must start with a letter and contain at most 256 letters, digits or '_'.", what, name)
	}
	return nil
}

func validateDescription(what, d string) error {
	if len(d) > 1024 {
		return errorf(ErrInvalidParameter, "%s must have at most 1024 characters.", what)
	}
	if d != "" && strings.TrimSpace(d) == "" {
		return errorf(ErrInvalidParameter, "%s must not be blank.", what)
	}
	return nil
}

// getNamed reads the record of an account's framework or report plan.
func getNamed[T any](tx meta.Tx, space, account, name, what string) (*T, error) {
	v := new(T)
	ok := false
	if auditNameRE.MatchString(name) {
		var err error
		if ok, err = getJSON(tx, space, key(account, name), v); err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, errorf(ErrNotFound, "%s %s does not exist.", what, name)
	}
	return v, nil
}

// listNamed reads every record of the account in space.
func listNamed[T any](tx meta.Tx, space, account string) ([]*T, error) {
	var out []*T
	err := scan(tx, space, key(account), func(k, v []byte) error {
		x := new(T)
		if err := json.Unmarshal(v, x); err != nil {
			return err
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// CreateFramework validates and stores a framework with its tags. A retry
// with the IdempotencyToken and the request of an earlier call answers
// that call's framework.
func (a *Audit) CreateFramework(ctx context.Context, account string, in FrameworkInput) (*Framework, error) {
	if err := validateAuditName("FrameworkName", in.FrameworkName); err != nil {
		return nil, err
	}
	if err := validateDescription("FrameworkDescription", in.FrameworkDescription); err != nil {
		return nil, err
	}
	if err := validateTags(in.FrameworkTags); err != nil {
		return nil, err
	}
	if err := a.ValidateControls(in.FrameworkControls); err != nil {
		return nil, err
	}
	f := &Framework{
		FrameworkName: in.FrameworkName, FrameworkDescription: in.FrameworkDescription, FrameworkControls: in.FrameworkControls,
		CreationTime: a.cat.clock(), DeploymentStatus: DeploymentCompleted, FrameworkStatus: FrameworkActive, IdempotencyToken: in.IdempotencyToken,
	}
	f.FrameworkArn = a.FrameworkARNPrefix(account) + f.FrameworkName + "-" + newUUID()
	var out *Framework
	err := a.cat.update(ctx, func(tx meta.Tx) error {
		all, err := listNamed[Framework](tx, spaceFrameworks, account)
		if err != nil {
			return err
		}
		controls := len(f.FrameworkControls)
		for _, o := range all {
			if o.FrameworkName == f.FrameworkName {
				if in.IdempotencyToken != "" && o.IdempotencyToken == in.IdempotencyToken && sameControls(o, f) {
					out = o
					return nil
				}
				return &Error{Kind: ErrAlreadyExists, Message: "A framework named " + f.FrameworkName + " already exists.", ARN: o.FrameworkArn}
			}
			controls += len(o.FrameworkControls)
		}
		if len(all) >= MaxFrameworks {
			return errorf(ErrLimitExceeded, "The number of frameworks in the account would exceed %d.", MaxFrameworks)
		}
		if controls > MaxControls {
			return errorf(ErrLimitExceeded, "The frameworks of the account would hold %d controls; at most %d are allowed.", controls, MaxControls)
		}
		out = f
		if len(in.FrameworkTags) > 0 {
			if err := putJSON(tx, spaceTags, []byte(f.FrameworkArn), in.FrameworkTags); err != nil {
				return err
			}
		}
		return putJSON(tx, spaceFrameworks, key(account, f.FrameworkName), f)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sameControls reports whether a stored framework is what f asks for.
func sameControls(stored, f *Framework) bool {
	x, _ := json.Marshal(stored.FrameworkControls)
	y, _ := json.Marshal(f.FrameworkControls)
	return string(x) == string(y) && stored.FrameworkDescription == f.FrameworkDescription
}

// DescribeFramework returns a framework of the account by name.
func (a *Audit) DescribeFramework(ctx context.Context, account, name string) (*Framework, error) {
	var out *Framework
	err := a.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		out, err = getNamed[Framework](tx, spaceFrameworks, account, name, "Framework")
		return err
	})
	return out, err
}

// ListFrameworks returns the account's frameworks, oldest first.
func (a *Audit) ListFrameworks(ctx context.Context, account string) ([]*Framework, error) {
	var out []*Framework
	err := a.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		out, err = listNamed[Framework](tx, spaceFrameworks, account)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreationTime.Before(out[j].CreationTime) })
	return out, err
}

// UpdateFramework replaces the members u sets. A retry with the
// idempotency token of the last update changes nothing.
func (a *Audit) UpdateFramework(ctx context.Context, account, name string, u FrameworkUpdate) (*Framework, error) {
	if u.FrameworkDescription != nil {
		if err := validateDescription("FrameworkDescription", *u.FrameworkDescription); err != nil {
			return nil, err
		}
	}
	if u.FrameworkControls != nil {
		if err := a.ValidateControls(u.FrameworkControls); err != nil {
			return nil, err
		}
	}
	var out *Framework
	err := a.cat.update(ctx, func(tx meta.Tx) error {
		all, err := listNamed[Framework](tx, spaceFrameworks, account)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(f *Framework) bool { return f.FrameworkName == name })
		if i < 0 {
			return errorf(ErrNotFound, "Framework %s does not exist.", name)
		}
		f := all[i]
		out = f
		if u.IdempotencyToken != "" && u.IdempotencyToken == f.UpdateToken {
			return nil
		}
		if u.FrameworkDescription != nil {
			f.FrameworkDescription = *u.FrameworkDescription
		}
		if u.FrameworkControls != nil {
			controls := len(u.FrameworkControls)
			for _, o := range all {
				if o != f {
					controls += len(o.FrameworkControls)
				}
			}
			if controls > MaxControls {
				return errorf(ErrLimitExceeded, "The frameworks of the account would hold %d controls; at most %d are allowed.", controls, MaxControls)
			}
			f.FrameworkControls = u.FrameworkControls
		}
		f.UpdateToken = u.IdempotencyToken
		return putJSON(tx, spaceFrameworks, key(account, name), f)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteFramework deletes a framework and its tags. A framework a report
// plan reports on is refused: the plan's reports would fail.
func (a *Audit) DeleteFramework(ctx context.Context, account, name string) error {
	return a.cat.update(ctx, func(tx meta.Tx) error {
		f, err := getNamed[Framework](tx, spaceFrameworks, account, name, "Framework")
		if err != nil {
			return err
		}
		plans, err := listNamed[ReportPlan](tx, spaceReportPlans, account)
		if err != nil {
			return err
		}
		for _, p := range plans {
			if slices.Contains(p.ReportSetting.FrameworkArns, f.FrameworkArn) {
				return errorf(ErrConflict, "Framework %s is used by report plan %s: update or delete the report plan first.", name, p.ReportPlanName)
			}
		}
		if err := tx.Delete(spaceTags, []byte(f.FrameworkArn)); err != nil {
			return err
		}
		return tx.Delete(spaceFrameworks, key(account, name))
	})
}

// auditResourceOfARN reports whether arn names a framework or report plan
// (space) of the account: the taggable check of tags.go.
func auditResourceOfARN(tx meta.Tx, space, account, arn, name string) bool {
	const suffix = 37 // "-" and a UUID
	if len(name) <= suffix || name[len(name)-suffix] != '-' {
		return false
	}
	var rec struct{ FrameworkArn, ReportPlanArn string }
	ok, err := getJSON(tx, space, key(account, name[:len(name)-suffix]), &rec)
	return err == nil && ok && (rec.FrameworkArn == arn || rec.ReportPlanArn == arn)
}
