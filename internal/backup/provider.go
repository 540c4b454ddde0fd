package backup

import (
	"context"
	"fmt"
	"strings"
)

// Resource is a resource a provider can back up, as its provider sees it
// now.
type Resource struct {
	ARN  string
	Type string // the provider's Type
	// Name is what the Backup API shows as ResourceName.
	Name string
	// Account owns the resource.
	Account string
	// Tags are what selections by tag (ListOfTags, Conditions) look at.
	Tags map[string]string
}

// Provider backs up and restores the resources of one AWS resource type.
// The job service does everything else: it records jobs and points, opens
// the vault, writes the point's entries through the BackupRun it gives the
// provider, commits or drops the point, and copies, moves, locks and
// expires points whatever their type. A provider knows its resources and
// nothing of jobs, vaults or plans.
//
// A provider may assume that:
//   - its methods are called only with ARNs it owns (Owns returned true)
//     and, for restores, points of its type;
//   - Backup and Restore run in a goroutine of the job service, several at
//     once for different resources, and ctx ends when the job is stopped
//     or the server shuts down;
//   - the point a Backup writes is dropped, not recorded, when Backup
//     returns an error, so it need not undo anything in the vault.
//
// A provider must guarantee that:
//   - a point is complete or the job fails: Backup returns nil only when
//     every item of the resource as of run.At is in the point, or is named
//     in BackupResult.Partial;
//   - data is streamed: no item is held in memory whole;
//   - it returns soon after ctx ends, with ctx's error or one wrapping it;
//   - its refusals are *Error values with a kind (ErrInvalidParameter for
//     a resource or target of another account, ErrNotFound for one that
//     does not exist), whose message the job or the caller is shown.
type Provider interface {
	// Type is the AWS ResourceType of the provider's resources (S3 for
	// buckets).
	Type() string
	// Owns reports whether arn names a resource of this type. It looks at
	// the ARN's form only: the resource may not exist.
	Owns(arn string) bool
	// Name is the resource's name, as the Backup API shows it
	// (ResourceName), of an ARN the provider owns.
	Name(arn string) string
	// Describe returns the resource arn names, as account sees it. A
	// resource that does not exist is ErrNotFound; one that belongs to
	// another account is ErrInvalidParameter: a job acts on the caller's
	// own resources only.
	Describe(ctx context.Context, account, arn string) (*Resource, error)
	// List returns the account's resources of the region: the ones a
	// backup plan's selections (by ARN, ARN pattern or tag) may assign. A
	// resource it leaves out is backed up on demand only.
	List(ctx context.Context, account string) ([]*Resource, error)
	// Backup writes run.Resource as it was at run.At into the point, with
	// run.Put (or run.PutUnchanged for an item the previous point already
	// holds, run.Previous).
	Backup(ctx context.Context, run *BackupRun) (BackupResult, error)
	// RestoreMetadata is what GetRecoveryPointRestoreMetadata answers for
	// a point: the metadata a restore of it starts from.
	RestoreMetadata(p *RecoveryPoint) map[string]string
	// CheckRestore judges a restore's metadata when the restore is asked
	// for, so that no job is made to fail, and returns the ARN of the
	// resource the restore writes to (the job's CreatedResourceArn).
	CheckRestore(ctx context.Context, account string, p *RecoveryPoint, metadata map[string]string) (target string, err error)
	// Restore writes the point's items into the target run.Metadata
	// names, reading them with run.Entries and run.Open and counting them
	// with run.Restored and run.Skipped.
	Restore(ctx context.Context, run *RestoreRun) error
}

// BackupResult is what a provider tells of a point it wrote, besides the
// items the BackupRun counted.
type BackupResult struct {
	// Partial, when not empty, says what the point lacks (items deleted
	// for good while the job ran): the point is recorded PARTIAL with it
	// as its status message.
	Partial string
	// Metadata is what the provider records of the resource as it backed
	// it up (an engine, a version): kept with the point and its copies as
	// RecoveryPoint.ResourceMetadata, for RestoreMetadata and Restore.
	Metadata map[string]string
}

// Registry holds the providers of a region, one per resource type, and
// finds the one that owns an ARN. It is built once, explicitly, by whoever
// wires the region, and does not change after.
type Registry struct {
	providers []Provider
}

// NewRegistry returns a registry of providers, looked up in the order
// given. Two providers of one type are an error.
func NewRegistry(providers ...Provider) (*Registry, error) {
	seen := map[string]bool{}
	for _, p := range providers {
		if seen[p.Type()] {
			return nil, fmt.Errorf("two resource providers of type %s", p.Type())
		}
		seen[p.Type()] = true
	}
	return &Registry{providers: append([]Provider(nil), providers...)}, nil
}

// Types lists the resource types of the registry, in registration order:
// GetSupportedResourceTypes.
func (r *Registry) Types() []string {
	out := make([]string, len(r.providers))
	for i, p := range r.providers {
		out[i] = p.Type()
	}
	return out
}

// Providers lists the registry's providers, in registration order.
func (r *Registry) Providers() []Provider { return append([]Provider(nil), r.providers...) }

// Lookup returns the provider that owns arn, or an ErrInvalidParameter
// error when none does.
func (r *Registry) Lookup(arn string) (Provider, error) {
	for _, p := range r.providers {
		if p.Owns(arn) {
			return p, nil
		}
	}
	return nil, errorf(ErrInvalidParameter, "Invalid resource ARN %q: Bulwark backs up resources of type %s.", arn, strings.Join(r.Types(), ", "))
}

// ByType returns the provider of a resource type.
func (r *Registry) ByType(t string) (Provider, bool) {
	for _, p := range r.providers {
		if p.Type() == t {
			return p, true
		}
	}
	return nil, false
}

// ResourceName is the name of the resource arn names, as the Backup API
// shows it: its provider's, or the ARN's last field when no provider owns
// it (a point recorded before its provider was removed).
func (r *Registry) ResourceName(arn string) string {
	if p, err := r.Lookup(arn); err == nil {
		return p.Name(arn)
	}
	return arn[strings.LastIndexByte(arn, ':')+1:]
}
