package backup

import (
	"context"
	"sort"
	"time"
)

// ProtectedResource is a resource with at least one recovery point that
// can be restored (COMPLETED or PARTIAL) in a vault of the region, and
// what its newest such point is.
type ProtectedResource struct {
	ResourceARN          string
	ResourceType         string
	LastBackupTime       time.Time // the newest point's instant
	LastBackupVaultName  string
	LastBackupVaultARN   string
	LastRecoveryPointARN string
	// LatestRestore is the newest completed restore of one of the
	// resource's recovery points still in the catalog; nil when none.
	LatestRestore *RestoreSummary
}

// RestoreSummary is what DescribeProtectedResource tells of a restore.
type RestoreSummary struct {
	JobCreationDate           time.Time
	ExecutionTime             time.Duration
	RecoveryPointCreationDate time.Time
}

// restorable says whether a point can be restored, which is what makes its
// resource protected.
func restorable(p *RecoveryPoint) bool {
	return p.Status == PointCompleted || p.Status == PointPartial
}

// ListProtectedResources returns the account's protected resources, by
// ARN: those with points in vaultName, or in any vault when it is "".
// With a vault named, the last backup is the newest point in that vault.
func (s *Service) ListProtectedResources(ctx context.Context, account, vaultName string) ([]*ProtectedResource, error) {
	ps, err := s.ListRecoveryPoints(ctx, account, vaultName, "")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []*ProtectedResource
	for _, p := range ps { // newest first
		if restorable(p) && !seen[p.ResourceARN] {
			seen[p.ResourceARN] = true
			out = append(out, protectedBy(p))
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].ResourceARN < out[k].ResourceARN })
	return out, nil
}

// DescribeProtectedResource returns a protected resource of the account
// with its latest restore.
func (s *Service) DescribeProtectedResource(ctx context.Context, account, arn string) (*ProtectedResource, error) {
	if arn == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter ResourceArn.")
	}
	ps, err := s.ListRecoveryPoints(ctx, account, "", arn)
	if err != nil {
		return nil, err
	}
	var pr *ProtectedResource
	points := map[string]*RecoveryPoint{}
	for _, p := range ps { // newest first
		points[p.ARN] = p
		if pr == nil && restorable(p) {
			pr = protectedBy(p)
		}
	}
	if pr == nil {
		return nil, errorf(ErrNotFound, "Resource %s is not protected: it has no recovery point.", arn)
	}
	// Restore jobs record the point they restored, not its resource: the
	// ones of this resource are those of its points.
	restores, err := s.ListRestoreJobs(ctx, account, JobFilter{State: RestoreCompleted})
	if err != nil {
		return nil, err
	}
	for _, j := range restores { // newest first
		p := points[j.RecoveryPointARN]
		if p == nil || j.CompletionDate == nil {
			continue
		}
		pr.LatestRestore = &RestoreSummary{
			JobCreationDate:           j.CreationDate,
			ExecutionTime:             max(j.CompletionDate.Sub(j.CreationDate), 0),
			RecoveryPointCreationDate: p.CreationDate,
		}
		break
	}
	return pr, nil
}

func protectedBy(p *RecoveryPoint) *ProtectedResource {
	return &ProtectedResource{
		ResourceARN: p.ResourceARN, ResourceType: p.ResourceType, LastBackupTime: p.CreationDate,
		LastBackupVaultName: p.VaultName, LastBackupVaultARN: p.VaultARN, LastRecoveryPointARN: p.ARN,
	}
}
