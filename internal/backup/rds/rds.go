// Package rds backs up registered databases — PostgreSQL, MySQL/MariaDB
// and SQLite — as resources of type RDS, one engine per database kind.
// The provider finds a resource's engine in its registration when it
// backs it up, and in the point's ResourceMetadata when it restores it:
// a point stays restorable after its resource is deregistered.
package rds

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/backup"
)

// MetaEngine is the key of ResourceMetadata that names a point's engine.
const MetaEngine = "Engine"

// Engine backs up and restores the databases of one engine.
type Engine interface {
	// Validate checks a registration (backup.Validator).
	Validate(ctx context.Context, reg *backup.Registered, password string) error
	// Backup writes the database as of now into run's point; its result's
	// Metadata is kept with the point (the provider adds MetaEngine).
	Backup(ctx context.Context, reg *backup.Registered, password string, run *backup.BackupRun) (backup.BackupResult, error)
	// RestoreMetadata, CheckRestore and Restore are the provider's, for
	// points of this engine.
	RestoreMetadata(p *backup.RecoveryPoint) map[string]string
	CheckRestore(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (string, error)
	Restore(ctx context.Context, run *backup.RestoreRun) error
}

// StreamingEngine is an engine that can also back its databases up
// continuously (backup.ContinuousProvider): Stream appends the database's
// changes to run until ctx ends; EndStream lets go of what the streams of
// a deleted continuous point held at the database.
type StreamingEngine interface {
	Engine
	Stream(ctx context.Context, reg *backup.Registered, password string, run *backup.StreamRun) error
	EndStream(ctx context.Context, reg *backup.Registered, password string, rp *backup.RecoveryPoint) error
}

// Provider is the RDS resource provider.
type Provider struct {
	backup.RegisteredBase
	engines map[string]Engine
}

// New returns the RDS provider of the region's registered databases, with
// the engines given by name (backup.EnginePostgres, ...), and makes it the
// validator of RDS registrations.
func New(rs *backup.Resources, engines map[string]Engine) *Provider {
	p := &Provider{RegisteredBase: backup.NewRegisteredBase(rs, backup.TypeRDS), engines: maps.Clone(engines)}
	rs.SetValidator(backup.TypeRDS, p)
	return p
}

func (p *Provider) engine(name string) (Engine, error) {
	if name == backup.EngineMariaDB {
		name = backup.EngineMySQL
	}
	e := p.engines[name]
	if e == nil {
		return nil, &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("Databases of engine %q are not backed up in this region.", name)}
	}
	return e, nil
}

// Validate checks a registration with its engine.
func (p *Provider) Validate(ctx context.Context, reg *backup.Registered, password string) error {
	e, err := p.engine(reg.Engine)
	if err != nil {
		return err
	}
	// A relative path is the engine's to refuse, with its own words.
	if path := reg.Settings[backup.SettingPath]; filepath.IsAbs(path) {
		if err := p.Resources.CheckPath(reg.AccountID, "Path", path); err != nil {
			return err
		}
	}
	return e.Validate(ctx, reg, password)
}

func (p *Provider) Backup(ctx context.Context, run *backup.BackupRun) (backup.BackupResult, error) {
	reg, err := p.Registration(ctx, run)
	if err != nil {
		return backup.BackupResult{}, err
	}
	e, err := p.engine(reg.Engine)
	if err != nil {
		return backup.BackupResult{}, err
	}
	if _, ok := e.(StreamingEngine); run.Continuous && !ok {
		return backup.BackupResult{}, &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("Databases of engine %s are not backed up continuously.", reg.Engine)}
	}
	password, err := p.Resources.Password(reg)
	if err != nil {
		return backup.BackupResult{}, err
	}
	res, err := e.Backup(ctx, reg, password, run)
	if err != nil {
		return res, err
	}
	if res.Metadata == nil {
		res.Metadata = map[string]string{}
	}
	res.Metadata[MetaEngine] = reg.Engine
	return res, nil
}

func (p *Provider) pointEngine(rp *backup.RecoveryPoint) (Engine, error) {
	return p.engine(rp.ResourceMetadata[MetaEngine])
}

func (p *Provider) RestoreMetadata(rp *backup.RecoveryPoint) map[string]string {
	e, err := p.pointEngine(rp)
	if err != nil {
		return map[string]string{}
	}
	md := e.RestoreMetadata(rp)
	md[MetaEngine] = rp.ResourceMetadata[MetaEngine]
	return md
}

func (p *Provider) CheckRestore(ctx context.Context, account string, rp *backup.RecoveryPoint, md map[string]string) (string, error) {
	e, err := p.pointEngine(rp)
	if err != nil {
		return "", err
	}
	if v, ok := md[MetaEngine]; ok && v != rp.ResourceMetadata[MetaEngine] {
		return "", &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("The recovery point is of engine %s, not %s.", rp.ResourceMetadata[MetaEngine], v)}
	}
	for _, k := range hostPathKeys {
		if v, ok := md[k]; ok && filepath.IsAbs(v) && !p.scratchPath(ctx, md, v) {
			if err := p.Resources.CheckPath(account, k, v); err != nil {
				return "", err
			}
		}
	}
	return e.CheckRestore(ctx, account, rp, md)
}

// hostPathKeys are the restore metadata keys that name a path on the
// server: a restored SQLite file, a restored PostgreSQL data directory.
var hostPathKeys = []string{"TargetPath", "DataDirectory"}

func (p *Provider) Restore(ctx context.Context, run *backup.RestoreRun) error {
	e, err := p.pointEngine(run.Point)
	if err != nil {
		return err
	}
	return e.Restore(ctx, run)
}

// Streams reports whether a database's engine backs it up continuously.
func (p *Provider) Streams(ctx context.Context, res *backup.Resource) bool {
	reg, err := p.Resources.Get(ctx, res.Account, res.ARN)
	if err != nil {
		return false
	}
	e, err := p.engine(reg.Engine)
	if err != nil {
		return false
	}
	_, ok := e.(StreamingEngine)
	return ok
}

// Stream hands a continuous point's stream to its database's engine.
func (p *Provider) Stream(ctx context.Context, run *backup.StreamRun) error {
	reg, err := p.Resources.Get(ctx, run.Resource.Account, run.Resource.ARN)
	if err != nil {
		return err
	}
	e, err := p.engine(reg.Engine)
	if err != nil {
		return err
	}
	se, ok := e.(StreamingEngine)
	if !ok {
		return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("Databases of engine %s are not backed up continuously.", reg.Engine)}
	}
	password, err := p.Resources.Password(reg)
	if err != nil {
		return err
	}
	return se.Stream(ctx, reg, password, run)
}

// EndStream has the engine of the point's database let go of what its
// stream held there. A database no longer registered cannot be reached:
// the error says so, and what the stream held stays until an operator
// removes it.
func (p *Provider) EndStream(ctx context.Context, rp *backup.RecoveryPoint) error {
	reg, err := p.Resources.Get(ctx, rp.AccountID, rp.ResourceARN)
	if err != nil {
		return fmt.Errorf("end the stream of %s: %w", rp.ARN, err)
	}
	e, err := p.engine(reg.Engine)
	if err != nil {
		return err
	}
	se, ok := e.(StreamingEngine)
	if !ok {
		return nil
	}
	password, err := p.Resources.Password(reg)
	if err != nil {
		return err
	}
	return se.EndStream(ctx, reg, password, rp)
}
