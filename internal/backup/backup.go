// Package backup is the AWS Backup catalog of a region: backup vaults,
// backup plans with their versions, resource selections, restore testing
// plans and selections, and the tags on vaults and plans, kept in the
// metadata store per account.
//
// The catalog validates what AWS Backup validates (names, schedules,
// windows, lifecycles) so that a plan it accepts is one the scheduler can
// run. It knows nothing of HTTP: errors carry a kind (ErrNotFound,
// ErrInvalidParameter, ...) that the wire package maps to AWS's codes.
//
// The job service (jobs.go) runs backups, restores and copies, and knows
// no resource type: a Provider (provider.go) backs up and restores the
// resources of one type, and a Registry given to the service finds the
// provider of an ARN. The region's buckets are the S3 provider
// (s3resource.go); copies, cold storage, lifecycle and vault lock work on
// points whatever their type.
//
// Audit (framework.go) is Backup Audit Manager: frameworks of controls
// evaluated over the catalog, and report plans whose report jobs write
// their reports into buckets through a ReportWriter.
package backup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Error kinds. Every error the catalog returns for a caller's mistake wraps
// one of them; anything else is a fault of the store.
var (
	ErrNotFound         = errors.New("resource not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrInvalidParameter = errors.New("invalid parameter value")
	ErrMissingParameter = errors.New("missing parameter value")
	ErrInvalidRequest   = errors.New("invalid request")
	ErrLimitExceeded    = errors.New("limit exceeded")
	// ErrConflict refuses a change that another resource depends on (a
	// framework a report plan reports on).
	ErrConflict = errors.New("conflict")
)

// Error is a caller's mistake: a kind and the message AWS would give.
type Error struct {
	Kind    error
	Message string
	// ARN names the resource that already exists, for ErrAlreadyExists.
	ARN string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Keyspaces of the metadata store.
const (
	spaceVaults     = "backup-vaults"     // account/name → vault
	spacePlans      = "backup-plans"      // account/planID → planRecord
	spaceVersions   = "backup-versions"   // account/planID/seq → PlanVersion
	spaceSelections = "backup-selections" // account/planID/selectionID → Selection
	spaceTags       = "backup-tags"       // resource ARN → map of tags
)

// Quotas, as AWS Backup's defaults.
const (
	MaxVaults             = 100
	MaxPlans              = 100
	MaxSelectionsPerPlan  = 50
	MaxRulesPerPlan       = 10
	MaxTagsPerResource    = 50
	defaultVaultName      = "Default"
	defaultStartWindow    = 480
	defaultCompleteWindow = 10080
)

// Catalog is the backup catalog of one region.
type Catalog struct {
	m      meta.Store
	region string
	now    func() time.Time
}

// NewCatalog returns the catalog of region over m; now is its clock (nil
// means time.Now).
func NewCatalog(m meta.Store, region string, now func() time.Time) *Catalog {
	if now == nil {
		now = time.Now
	}
	return &Catalog{m: m, region: region, now: now}
}

// Region is the region the catalog describes.
func (c *Catalog) Region() string { return c.region }

func (c *Catalog) clock() time.Time { return c.now().UTC().Truncate(time.Millisecond) }

// newUUID returns a random version 4 UUID.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, p...)
	}
	return b
}

func seqKey(prefix []byte, seq uint64) []byte {
	k := append(append([]byte{}, prefix...), '/')
	return binary.BigEndian.AppendUint64(k, seq)
}

func getJSON(tx meta.Tx, space string, k []byte, v any) (bool, error) {
	b := tx.Get(space, k)
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decode %s %q: %w", space, k, err)
	}
	return true, nil
}

func putJSON(tx meta.Tx, space string, k []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(space, k, b)
}

// scan calls fn for every key under prefix+"/" in space, in key order.
func scan(tx meta.Tx, space string, prefix []byte, fn func(k, v []byte) error) error {
	p := append(append([]byte{}, prefix...), '/')
	it := tx.Iter(space)
	for k, v := it.Seek(p); k != nil && len(k) >= len(p) && string(k[:len(p)]) == string(p); k, v = it.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// view and update run fn in a transaction of the store.
func (c *Catalog) view(ctx context.Context, fn func(meta.Tx) error) error {
	return c.m.View(ctx, fn)
}

func (c *Catalog) update(ctx context.Context, fn func(meta.Tx) error) error {
	return c.m.Update(ctx, fn)
}
