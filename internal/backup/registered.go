package backup

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Resources that live outside Bulwark — databases, directories — are not
// made through an S3 call the way a bucket is: an account registers them,
// with the settings a provider needs to reach them, and they get an ARN
// in the shape of the nearest AWS service:
//
//	PostgreSQL, MySQL/MariaDB, SQLite  RDS  arn:aws:rds:REGION:ACCOUNT:db:NAME
//	directory                           EFS  arn:aws:elasticfilesystem:REGION:ACCOUNT:file-system/fs-ID
//
// A registered resource's password is kept sealed with the deployment key
// (AES-256-GCM, the resource's ARN as associated data), never logged and
// never returned: Registered carries it only as Sealed, and a provider
// unseals it with Resources.Password when it connects.

const spaceRegistered = "backup-registered" // account/ARN → Registered

// Resource types of registered resources, and the engines of RDS.
const (
	TypeRDS = "RDS"
	TypeEFS = "EFS"

	EnginePostgres = "postgres"
	EngineMySQL    = "mysql"
	EngineMariaDB  = "mariadb"
	EngineSQLite   = "sqlite"
)

// Settings keys a registration may carry. Which ones a resource needs is
// its provider's to say (Validate); Password is never stored in Settings.
const (
	SettingHost     = "Host"
	SettingPort     = "Port"
	SettingUser     = "User"
	SettingDatabase = "Database"
	SettingPath     = "Path"
	// SettingPreBackup and SettingPostBackup are shell commands run
	// before and after each backup of the resource (quiescing hooks).
	SettingPreBackup  = "PreBackupCommand"
	SettingPostBackup = "PostBackupCommand"
)

// MaxRegisteredPerAccount bounds the registrations of one account in a
// region.
const MaxRegisteredPerAccount = 1000

// Registered is a resource registered with the backup service.
type Registered struct {
	AccountID string
	ARN       string
	Type      string // TypeRDS or TypeEFS
	Name      string
	// Engine is the database engine of an RDS resource; empty for EFS.
	Engine   string `json:",omitempty"`
	Settings map[string]string
	Tags     map[string]string `json:",omitempty"`
	// Sealed is the password, sealed; empty when the resource has none.
	Sealed       []byte `json:",omitempty"`
	CreationTime time.Time
}

// HasPassword reports whether the registration carries a password.
func (r *Registered) HasPassword() bool { return len(r.Sealed) > 0 }

// Resource is the registration as a provider's Describe shows it.
func (r *Registered) Resource() *Resource {
	return &Resource{ARN: r.ARN, Type: r.Type, Name: r.Name, Account: r.AccountID, Tags: maps.Clone(r.Tags)}
}

// Registration is what an account asks to register.
type Registration struct {
	Type     string
	Name     string
	Engine   string
	Settings map[string]string
	Password string
	Tags     map[string]string
}

// Validator checks a registration before it is stored: that the resource
// can be reached with the settings and password given (a database answers,
// a path exists, the tools the provider runs are installed). Its refusals
// are *Error values; the registration is not stored.
type Validator interface {
	Validate(ctx context.Context, reg *Registered, password string) error
}

// Resources is the store of registered resources of a region.
type Resources struct {
	cat        *Catalog
	aead       cipher.AEAD
	validators map[string]Validator // by type
	roots      []string
	admin      func() string
}

// NewResources returns the registered resources of the catalog's region,
// whose passwords are sealed with a key derived from secret (the
// deployment key).
func NewResources(cat *Catalog, secret []byte) (*Resources, error) {
	if len(secret) == 0 {
		return nil, errors.New("registered resources: no deployment key")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("bulwark registered resource passwords"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Resources{cat: cat, aead: aead, validators: map[string]Validator{}}, nil
}

// SetValidator makes v the check of registrations of resource type t.
// Registering a type with no validator is refused. Called while the
// region is wired, before the first registration.
func (rs *Resources) SetValidator(t string, v Validator) { rs.validators[t] = v }

// Types lists the resource types that can be registered.
func (rs *Resources) Types() []string { return slices.Sorted(maps.Keys(rs.validators)) }

// Region is the region the resources are registered in.
func (rs *Resources) Region() string { return rs.cat.region }

var (
	rdsName   = regexp.MustCompile(`^[A-Za-z](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,62}$`)
	efsName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+=:@/ -]{0,254}$`)
	rdsARN    = regexp.MustCompile(`^arn:aws:rds:[a-z0-9-]+:[0-9]{12}:db:[A-Za-z](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,62}$`)
	efsARN    = regexp.MustCompile(`^arn:aws:elasticfilesystem:[a-z0-9-]+:[0-9]{12}:file-system/fs-[0-9a-f]{8,40}$`)
	engineSet = map[string]bool{EnginePostgres: true, EngineMySQL: true, EngineMariaDB: true, EngineSQLite: true}
)

// OwnsRDS and OwnsEFS report whether an ARN has the form of a registered
// resource of the type.
func OwnsRDS(arn string) bool { return rdsARN.MatchString(arn) }
func OwnsEFS(arn string) bool { return efsARN.MatchString(arn) }

// RDSARN returns the ARN of the RDS resource name in region of account.
func RDSARN(region, account, name string) string {
	return "arn:aws:rds:" + region + ":" + account + ":db:" + name
}

// ValidRDSName reports whether name may name an RDS resource (AWS's rule
// for DB instance identifiers).
func ValidRDSName(name string) bool { return rdsName.MatchString(name) }

func (rs *Resources) newARN(account string, in *Registration) string {
	if in.Type == TypeRDS {
		return RDSARN(rs.cat.region, account, in.Name)
	}
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "arn:aws:elasticfilesystem:" + rs.cat.region + ":" + account + ":file-system/fs-" + hex.EncodeToString(b)[:17]
}

// Register validates and stores a registration of account. A name already
// registered for the type is ErrAlreadyExists.
func (rs *Resources) Register(ctx context.Context, account string, in Registration) (*Registered, error) {
	in.Engine = strings.ToLower(in.Engine)
	switch in.Type {
	case TypeRDS:
		if !ValidRDSName(in.Name) {
			return nil, errorf(ErrInvalidParameter, "Invalid name %q: an RDS resource's name has 1 to 63 letters, digits or hyphens, begins with a letter and has no two hyphens in a row or at its end.", in.Name)
		}
		if !engineSet[in.Engine] {
			return nil, errorf(ErrInvalidParameter, "Invalid engine %q: one of postgres, mysql, mariadb, sqlite.", in.Engine)
		}
	case TypeEFS:
		if !efsName.MatchString(in.Name) {
			return nil, errorf(ErrInvalidParameter, "Invalid name %q: a directory's name has 1 to 255 letters, digits, spaces or _.+=:@/- and begins with a letter or digit.", in.Name)
		}
		if in.Engine != "" {
			return nil, errorf(ErrInvalidParameter, "A directory has no engine.")
		}
	case "":
		return nil, errorf(ErrMissingParameter, "Missing resource type: RDS for a database, EFS for a directory.")
	default:
		return nil, errorf(ErrInvalidParameter, "Resource type %s cannot be registered: RDS for a database, EFS for a directory.", in.Type)
	}
	for k, v := range in.Settings {
		if strings.EqualFold(k, "Password") {
			return nil, errorf(ErrInvalidParameter, "The password is given on its own, not among the settings.")
		}
		if len(k) > 128 || len(v) > 4096 {
			return nil, errorf(ErrInvalidParameter, "Setting %.128q is too long.", k)
		}
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, err
	}
	v := rs.validators[in.Type]
	if v == nil {
		return nil, errorf(ErrInvalidParameter, "Resource type %s cannot be registered in this region.", in.Type)
	}
	reg := &Registered{
		AccountID: account, Type: in.Type, Name: in.Name, Engine: in.Engine,
		Settings: maps.Clone(in.Settings), Tags: maps.Clone(in.Tags), CreationTime: rs.cat.clock(),
	}
	if reg.Settings == nil {
		reg.Settings = map[string]string{}
	}
	if err := rs.unique(ctx, account, reg); err != nil {
		return nil, err
	}
	reg.ARN = rs.newARN(account, &in)
	if err := v.Validate(ctx, reg, in.Password); err != nil {
		return nil, err
	}
	if in.Password != "" {
		reg.Sealed = rs.seal(reg.ARN, in.Password)
	}
	err := rs.cat.update(ctx, func(tx meta.Tx) error {
		n := 0
		var dup *Registered
		if err := scan(tx, spaceRegistered, key(account), func(_, v []byte) error {
			n++
			var r Registered
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Type == reg.Type && r.Name == reg.Name {
				dup = &r
			}
			return nil
		}); err != nil {
			return err
		}
		if dup != nil {
			return &Error{Kind: ErrAlreadyExists, Message: fmt.Sprintf("A %s resource named %s is registered already.", reg.Type, reg.Name), ARN: dup.ARN}
		}
		if n >= MaxRegisteredPerAccount {
			return errorf(ErrLimitExceeded, "An account registers at most %d resources in a region.", MaxRegisteredPerAccount)
		}
		return putJSON(tx, spaceRegistered, key(account, reg.ARN), reg)
	})
	if err != nil {
		return nil, err
	}
	return reg, nil
}

func (rs *Resources) unique(ctx context.Context, account string, reg *Registered) error {
	list, err := rs.List(ctx, account, reg.Type)
	if err != nil {
		return err
	}
	for _, r := range list {
		if r.Name == reg.Name {
			return &Error{Kind: ErrAlreadyExists, Message: fmt.Sprintf("A %s resource named %s is registered already.", reg.Type, reg.Name), ARN: r.ARN}
		}
	}
	return nil
}

// Get returns the registration arn names, as account sees it: ErrNotFound
// when there is none, ErrInvalidParameter when it is another account's.
func (rs *Resources) Get(ctx context.Context, account, arn string) (*Registered, error) {
	if owner := arnAccount(arn); owner != "" && owner != account {
		return nil, errorf(ErrInvalidParameter, "Resource %s belongs to another account.", arn)
	}
	var r Registered
	var ok bool
	err := rs.cat.view(ctx, func(tx meta.Tx) error {
		var err error
		ok, err = getJSON(tx, spaceRegistered, key(account, arn), &r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Resource %s is not registered.", arn)
	}
	return &r, nil
}

// List returns the account's registrations of type t (every type when t is
// empty), in ARN order.
func (rs *Resources) List(ctx context.Context, account, t string) ([]*Registered, error) {
	var out []*Registered
	err := rs.cat.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceRegistered, key(account), func(_, v []byte) error {
			var r Registered
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if t == "" || r.Type == t {
				out = append(out, &r)
			}
			return nil
		})
	})
	return out, err
}

// Deregister removes a registration. Its recovery points stay, and can be
// restored; the resource is no longer backed up.
func (rs *Resources) Deregister(ctx context.Context, account, arn string) error {
	if _, err := rs.Get(ctx, account, arn); err != nil {
		return err
	}
	return rs.cat.update(ctx, func(tx meta.Tx) error {
		return tx.Delete(spaceRegistered, key(account, arn))
	})
}

// Password unseals a registration's password; "" when it has none.
func (rs *Resources) Password(r *Registered) (string, error) {
	if len(r.Sealed) == 0 {
		return "", nil
	}
	n := rs.aead.NonceSize()
	if len(r.Sealed) < n {
		return "", fmt.Errorf("password of %s: sealed value too short", r.ARN)
	}
	plain, err := rs.aead.Open(nil, r.Sealed[:n], r.Sealed[n:], []byte(r.ARN))
	if err != nil {
		return "", fmt.Errorf("password of %s: cannot unseal with this deployment key", r.ARN)
	}
	return string(plain), nil
}

func (rs *Resources) seal(arn, password string) []byte {
	nonce := make([]byte, rs.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return rs.aead.Seal(nonce, nonce, []byte(password), []byte(arn))
}

// arnAccount is the account field of an ARN; "" when it has none.
func arnAccount(arn string) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 {
		return ""
	}
	return f[4]
}

// RegisteredBase is the base of a provider of registered resources: it owns
// the ARNs of its type and describes and lists them from the store. A
// provider embeds it and adds Backup and Restore.
type RegisteredBase struct {
	Resources *Resources
	T         string
	owns      func(string) bool
}

// NewRegisteredBase returns the base of the provider of type t.
func NewRegisteredBase(rs *Resources, t string) RegisteredBase {
	b := RegisteredBase{Resources: rs, T: t}
	switch t {
	case TypeRDS:
		b.owns = OwnsRDS
	case TypeEFS:
		b.owns = OwnsEFS
	default:
		panic("backup: no registered resources of type " + t)
	}
	return b
}

func (b RegisteredBase) Type() string { return b.T }

func (b RegisteredBase) Owns(arn string) bool { return b.owns(arn) }

// Name is the registered name of an RDS resource, which its ARN carries;
// of an EFS resource, whose ARN carries an ID, it is the ID (Describe
// gives the registered name).
func (b RegisteredBase) Name(arn string) string {
	if i := strings.LastIndexAny(arn, ":/"); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

func (b RegisteredBase) Describe(ctx context.Context, account, arn string) (*Resource, error) {
	r, err := b.Resources.Get(ctx, account, arn)
	if err != nil {
		return nil, err
	}
	return r.Resource(), nil
}

func (b RegisteredBase) List(ctx context.Context, account string) ([]*Resource, error) {
	regs, err := b.Resources.List(ctx, account, b.T)
	if err != nil {
		return nil, err
	}
	out := make([]*Resource, len(regs))
	for i, r := range regs {
		out[i] = r.Resource()
	}
	return out, nil
}

// Registration returns the registration a run backs up.
func (b RegisteredBase) Registration(ctx context.Context, run *BackupRun) (*Registered, error) {
	return b.Resources.Get(ctx, run.Resource.Account, run.Resource.ARN)
}

// Host paths. A directory, an SQLite file and the target of a restore to
// the server's filesystem (a directory, a file, a PostgreSQL data
// directory) are paths on the machine Bulwark runs on, which Bulwark reads
// and writes as its own user. Which ones an account may name is the
// deployment's choice: with roots configured (serve --resource-root), any
// account may name paths inside them and none outside; without, only the
// deployment's admin account may name paths, anywhere.

// SetPathPolicy sets the directories host paths must be inside (none: the
// admin account only), and how to learn the admin account.
func (rs *Resources) SetPathPolicy(roots []string, admin func() string) {
	rs.roots, rs.admin = nil, admin
	for _, r := range roots {
		if abs, err := filepath.Abs(r); err == nil {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				abs = real
			}
			rs.roots = append(rs.roots, filepath.Clean(abs))
		}
	}
}

// CheckPath refuses a host path account may not name (what says what it
// is, for the message). The path must be absolute; its symbolic links are
// resolved as far as it exists before it is compared with the roots.
func (rs *Resources) CheckPath(account, what, path string) error {
	if path == "" || !filepath.IsAbs(path) {
		return errorf(ErrInvalidParameter, "%s %q is not an absolute path.", what, path)
	}
	if len(rs.roots) == 0 {
		if rs.admin == nil || account != rs.admin() {
			return errorf(ErrInvalidParameter, "%s %q: paths on the server are open to the deployment's admin account only, unless the server names directories for them with --resource-root.", what, path)
		}
		return nil
	}
	real := resolveExisting(filepath.Clean(path))
	for _, root := range rs.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			return nil
		}
	}
	return errorf(ErrInvalidParameter, "%s %q is outside the directories this server allows (--resource-root %s).", what, path, strings.Join(rs.roots, ", "))
}

// resolveExisting resolves the symbolic links of the longest part of path
// that exists, and appends the rest.
func resolveExisting(path string) string {
	rest := ""
	for p := path; ; {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(real, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
