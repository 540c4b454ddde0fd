package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a private PostgreSQL cluster a test makes with initdb, on a
// free port of 127.0.0.1, run as the postgres OS user when the test runs
// as root (PostgreSQL refuses to run as root). Its directory's parents let
// that user in (0711); it is stopped and removed at the end of the test.
// Unlike Database, it is the test's own server: the test can stop it,
// start it again, and change its configuration.
type Cluster struct {
	Base    string // a directory the server user can reach, for restores too
	Data    string
	Port    int
	BinDir  string
	t       testing.TB
	user    *serverUser
	stopped bool
}

// ClusterOptions shape a test cluster.
type ClusterOptions struct {
	// Password, when set, is the postgres user's, and TCP connections
	// need it (scram-sha-256).
	Password string
	// Conf is added to postgresql.conf.
	Conf string
}

// StartCluster makes and starts a cluster, or skips the test when
// PostgreSQL's programs are missing (fails under CI=true).
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	RequireTool(t, "pg_basebackup")
	initdb := serverTool(t, "initdb")
	u, err := lookupServerUser()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "bulwark-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Base: base, Data: filepath.Join(base, "data"), Port: FreePort(t), BinDir: filepath.Dir(resolve(initdb)), t: t, user: u}
	t.Cleanup(func() {
		c.Stop()
		os.RemoveAll(base)
	})
	if err := os.Mkdir(c.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := u.chown(c.Data); err != nil {
		t.Fatal(err)
	}
	args := []string{"-D", c.Data, "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"}
	if o.Password != "" {
		pw := filepath.Join(base, "pw")
		if err := os.WriteFile(pw, []byte(o.Password+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--pwfile="+pw, "--auth-local=trust", "--auth-host=scram-sha-256")
	} else {
		args = append(args, "-A", "trust")
	}
	c.run(initdb, args...)
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 10\nfsync = off\n%s\n",
		c.Port, c.Data, o.Conf)
	f, err := os.OpenFile(filepath.Join(c.Data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.start()
	return c
}

func (c *Cluster) start() {
	c.t.Helper()
	c.run(filepath.Join(c.BinDir, "pg_ctl"), "start", "-D", c.Data, "-w", "-s", "-l", filepath.Join(c.Data, "server.log"))
}

// Start starts the cluster again after Stop, and returns once it accepts
// connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if !c.stopped {
		return
	}
	c.start()
	c.stopped = false
}

// DSN is the cluster's postgres database over TCP, as a region would name
// it.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.Port)
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	cmd := c.user.command(context.Background(), c.Base, prog, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, out)
	}
}

// Stop stops the cluster at once (a crash, as far as it knows): its
// connections are cut and new ones refused until Start.
func (c *Cluster) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	StopServer(c.t, c.BinDir, c.Data)
}

// StopServer stops the server of a data directory, as the server user.
func StopServer(t testing.TB, binDir, dataDir string) {
	u, err := lookupServerUser()
	if err != nil {
		t.Error(err)
		return
	}
	_ = u.command(context.Background(), filepath.Dir(dataDir), filepath.Join(binDir, "pg_ctl"), "stop", "-D", dataDir, "-m", "immediate", "-s").Run()
}

// Conn connects to the cluster as postgres over its socket.
func (c *Cluster) Conn(t testing.TB) *pgx.Conn {
	return SocketConn(t, c.Data, c.Port, "postgres")
}

// SocketConn connects to a server over the socket in its data directory.
func SocketConn(t testing.TB, dataDir string, port int, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", dataDir, port, db))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL on the cluster.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := c.Conn(t).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// FreePort is a TCP port of 127.0.0.1 free a moment ago.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PortString is the cluster's port as a setting.
func (c *Cluster) PortString() string { return strconv.Itoa(c.Port) }

// RunAsServerUser runs a program as the server user (pgbench, psql).
func (c *Cluster) RunAsServerUser(t testing.TB, prog string, args ...string) string {
	t.Helper()
	cmd := c.user.command(context.Background(), c.Base, prog, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serverTool finds a server program: on PATH, or where Debian's and the
// PostgreSQL project's packages put it, which is not on PATH.
func serverTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin/", "/usr/pgsql-*/bin/"} {
		if m, _ := filepath.Glob(pattern + name); len(m) > 0 {
			slices.Sort(m)
			return m[len(m)-1]
		}
	}
	return RequireTool(t, name)
}

// RequireTool returns the path of a program on PATH, or skips the test
// without it, or under CI=true fails it.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true but not on PATH", name)
		}
		t.Skipf("%s not on PATH; install it to run this test", name)
	}
	return p
}

// serverUser is who a test cluster runs as: the postgres OS user when the
// test runs as root, else the test's own user.
type serverUser struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil when not root: the test runs the server itself
}

func lookupServerUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return &serverUser{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root, and the postgres user it would run as does not exist: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return &serverUser{name: u.Username, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}, nil
}

// command returns a program to run as the server user, in dir, without
// the PG* variables that would steer it to another server or user.
func (u *serverUser) command(ctx context.Context, dir, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		cmd.Env = append(cmd.Env, "HOME="+dir, "USER="+u.name, "LOGNAME="+u.name)
	}
	return cmd
}

func (u *serverUser) chown(path string) error {
	if u.cred == nil {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}
