package replication

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
)

// RoleCredentials are temporary credentials of a replication role.
type RoleCredentials struct {
	AccessKey, Secret, Token string
	Expires                  time.Time
	Principal                iam.Principal
}

// roles caches the credentials of the roles replication acts as.
type roles struct {
	mu    sync.Mutex
	creds map[string]*RoleCredentials
}

// roleCreds returns credentials of a role, assuming it again when those
// held are near expiry.
func (e *Engine) roleCreds(ctx context.Context, role string) (*RoleCredentials, error) {
	e.roles.mu.Lock()
	c := e.roles.creds[role]
	e.roles.mu.Unlock()
	if c != nil && e.now().Before(c.Expires.Add(-5*time.Minute)) {
		return c, nil
	}
	c, err := e.cfg.AssumeRole(ctx, role)
	if err != nil {
		return nil, err
	}
	e.roles.mu.Lock()
	if e.roles.creds == nil {
		e.roles.creds = map[string]*RoleCredentials{}
	}
	e.roles.creds[role] = c
	e.roles.mu.Unlock()
	return c, nil
}

// forgetRole drops a role's credentials, after a denial that a new session
// may not meet (the role's policies changed).
func (e *Engine) forgetRole(role string) {
	e.roles.mu.Lock()
	delete(e.roles.creds, role)
	e.roles.mu.Unlock()
}

// mayOnSource checks that the role may do action on a source resource:
// reading versions, their tags, the configuration.
func (e *Engine) mayOnSource(ctx context.Context, c *RoleCredentials, action, resource, owner string) error {
	if e.cfg.Authorize == nil {
		return nil
	}
	p := c.Principal
	err := e.cfg.Authorize(ctx, &iam.Request{Principal: &p, Action: action, Resource: resource, ResourceOwner: owner})
	if err != nil && !errors.Is(err, iam.ErrAccessDenied) {
		return fmt.Errorf("authorize %s: %w", action, err)
	}
	return err
}
