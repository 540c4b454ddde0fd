package iam

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/iam/policy"
	"github.com/bulwark/bulwark/internal/meta"
)

// Lookup finds the key an access key ID names: a root key given by
// configuration, a stored access key (root's or a user's), or an
// assumed-role session. Secrets are unsealed here, for signature checking
// only. It implements KeyLookup.
func (s *Store) Lookup(ctx context.Context, id string) (Key, error) {
	if k, err := s.roots.Lookup(ctx, id); err == nil {
		return k, nil
	}
	if isSessionKey(id) {
		// Sessions are not stored: the secret derives from the key ID and
		// the token carries the rest, sealed, so that every region holding
		// the deployment key accepts them.
		return Key{AccessKey: id, Secret: s.sessionSecret(id),
			Session: func(token string) (*Session, error) { return s.openToken(id, token) }}, nil
	}
	var key Key
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		if raw := tx.Get(spaceKeys, []byte(id)); raw != nil {
			k, err := get[AccessKey](tx, spaceKeys, []byte(id), id)
			if err != nil {
				return err
			}
			secret, err := s.seal.open(k.ID, k.Sealed)
			if err != nil {
				return err
			}
			key = Key{AccessKey: id, Secret: secret, Inactive: k.Status != KeyActive,
				Principal: Principal{AccountID: k.Account, ARN: RootARN(k.Account), AccessKey: id}}
			if k.User != "" {
				u, err := get[User](tx, spaceUsers, entityKey(k.Account, k.User), "user "+k.User)
				if err != nil {
					return ErrUnknownKey // the user is gone
				}
				key.Principal.ARN, key.Principal.UserName = u.ARN(), u.Name
			}
			return nil
		}
		return ErrUnknownKey
	})
	return key, err
}

// AssumeRole issues temporary credentials for a role to caller, when the
// role's trust policy and (for a caller of another account, or one the
// trust policy does not name) the caller's own policies allow
// sts:AssumeRole on the role.
func (s *Store) AssumeRole(ctx context.Context, caller *Principal, roleARN, sessionName string, duration time.Duration) (*Session, error) {
	if err := checkName("roleSessionName", sessionName, sessionRE); err != nil {
		return nil, err
	}
	acct, name, err := splitRoleARN(roleARN)
	if err != nil {
		return nil, err
	}
	role, err := s.Role(ctx, acct, name)
	if errors.Is(err, ErrNoSuchEntity) {
		return nil, fmt.Errorf("%w: not authorized to perform sts:AssumeRole on %s", ErrAccessDenied, roleARN)
	}
	if err != nil {
		return nil, err
	}
	if duration == 0 {
		duration = time.Hour
	}
	if duration < MinSessionDuration || duration > role.MaxSession {
		return nil, fmt.Errorf("%w: The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", ErrInvalidInput)
	}
	if err := s.mayAssume(ctx, caller, role); err != nil {
		return nil, err
	}
	ss := &Session{ID: newID("ASIA", 16), Account: acct, RoleName: role.Name, RoleARN: role.ARN(), RoleID: role.ID,
		SessionName: sessionName, Expires: s.now().Add(duration).UTC().Truncate(time.Second)}
	ss.Secret = s.sessionSecret(ss.ID)
	claims, err := json.Marshal(ss)
	if err != nil {
		return nil, err
	}
	ss.Token = sessionTokenPrefix + base64.RawURLEncoding.EncodeToString(s.seal.seal(ss.ID, string(claims)))
	return ss, nil
}

// sessionTokenPrefix marks Bulwark's session tokens.
const sessionTokenPrefix = "BWS1"

func isSessionKey(id string) bool { return len(id) == 20 && strings.HasPrefix(id, "ASIA") }

// sessionSecret derives a session's secret key from its key ID with the
// deployment key.
func (s *Store) sessionSecret(id string) string {
	m := hmac.New(sha256.New, s.sessionKey)
	m.Write([]byte("bulwark session secret\x00" + id))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:40]
}

// openToken reads the session a token describes; a token altered, made
// for another key ID or made without the deployment key does not open.
func (s *Store) openToken(id, token string) (*Session, error) {
	raw, ok := strings.CutPrefix(token, sessionTokenPrefix)
	if !ok {
		return nil, ErrInvalidClientToken
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, ErrInvalidClientToken
	}
	plain, err := s.seal.open(id, sealed)
	if err != nil {
		return nil, ErrInvalidClientToken
	}
	var ss Session
	if err := json.Unmarshal([]byte(plain), &ss); err != nil {
		return nil, ErrInvalidClientToken
	}
	return &ss, nil
}

// mayAssume applies AWS's rules for assuming a role: the trust policy must
// always allow the caller; a service it names needs nothing more; a
// principal of the role's account that the trust policy names by its own
// ARN needs nothing more either; otherwise (the trust policy names the
// account, or the caller is of another account) the caller's identity
// policies must allow sts:AssumeRole on the role too. An explicit deny
// anywhere refuses.
func (s *Store) mayAssume(ctx context.Context, caller *Principal, role *Role) error {
	e := &Evaluator{Store: s}
	deny := func(why string) error {
		return e.denied(&Request{Principal: caller, Action: "sts:AssumeRole", Resource: role.ARN()}, why)
	}
	trust, err := e.parse([]byte(role.Trust), trustKind)
	if err != nil {
		return deny("its trust policy cannot be read")
	}
	preq := &policy.Request{Action: "sts:AssumeRole", Resource: role.ARN(), Context: map[string][]string{}}
	preq.Principal = &policy.Principal{Account: caller.AccountID, ARN: caller.ARN, RoleARN: caller.RoleARN, Service: caller.Service}
	if trust.Evaluate(preq) != policy.Allow {
		return deny("the role's trust policy does not allow it")
	}
	if caller.Service != "" {
		return nil
	}
	identity, err := e.identity(ctx, caller, preq)
	if err != nil {
		return err
	}
	switch {
	case identity == policy.Deny:
		return deny("an explicit deny in an identity-based policy")
	case identity == policy.Allow:
		return nil
	case caller.AccountID == role.Account && namesPrincipal(trust, caller):
		return nil
	}
	return deny("no identity-based policy allows it")
}

// namesPrincipal reports whether an Allow statement of a trust policy
// names the caller itself (its ARN, or its role for a session), not just
// its account.
func namesPrincipal(p *policy.Policy, caller *Principal) bool {
	for _, st := range p.Statements {
		if st.Effect != "Allow" || st.Principal == nil {
			continue
		}
		for _, a := range st.Principal.AWS {
			if a == caller.ARN || caller.RoleARN != "" && a == caller.RoleARN {
				return true
			}
		}
	}
	return false
}

func splitRoleARN(arn string) (account, name string, err error) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	acct, res, ok2 := strings.Cut(rest, ":role/")
	if !ok || !ok2 || len(acct) != 12 || res == "" {
		return "", "", fmt.Errorf("%w: %s is not a role ARN", ErrInvalidInput, arn)
	}
	return acct, res[strings.LastIndex(res, "/")+1:], nil
}

// ServiceS3 is the service principal replication assumes roles as.
const ServiceS3 = "s3.amazonaws.com"

// AssumeRoleAsService issues a session of a role to a service (S3's
// replication), when the role's trust policy names that service.
func (s *Store) AssumeRoleAsService(ctx context.Context, service, roleARN, sessionName string) (*Session, error) {
	acct, _, err := splitRoleARN(roleARN)
	if err != nil {
		return nil, err
	}
	caller := &Principal{AccountID: acct, ARN: service, Service: service}
	return s.AssumeRole(ctx, caller, roleARN, sessionName, time.Hour)
}

// ReplicationRoleName is the role bulwark up makes for replication.
const ReplicationRoleName = "s3-replication-role"

// ReplicationRolePolicy allows what the design article says a replication
// role needs: s3:ReplicateObject, s3:ReplicateDelete and
// s3:GetObjectVersionForReplication.
const ReplicationRolePolicy = `{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:GetObjectVersionForReplication"],
    "Resource": "*"
  }]
}`

// replicationTrust lets S3 assume the role.
const replicationTrust = `{
  "Version": "2012-10-17",
  "Statement": [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}]
}`

// EnsureReplicationRole creates the account's s3-replication-role, trusted
// by S3 and allowed what the article lists, unless it exists.
func (s *Store) EnsureReplicationRole(ctx context.Context, account string) error {
	if _, err := s.Role(ctx, account, ReplicationRoleName); err == nil {
		return nil
	}
	_, err := s.CreateRole(ctx, &Role{Account: account, Name: ReplicationRoleName, Trust: replicationTrust,
		Description: "Lets Bulwark's replication copy objects to destination buckets."})
	if err != nil && !errors.Is(err, ErrEntityExists) {
		return err
	}
	return s.PutInlinePolicy(ctx, EntityRole, account, ReplicationRoleName, "replication", ReplicationRolePolicy)
}
