package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/backup"
)

const resourceUsage = `Usage: bulwark resource <command> [flags]

Registers what lives outside Bulwark, databases (type RDS: PostgreSQL,
MySQL/MariaDB, SQLite) and directories (type EFS), with the backup service
of the region at -endpoint: the region whose machine reaches them. Each
gets an ARN, and the AWS Backup API then backs it up like a bucket
(aws backup start-backup-job --resource-arn ARN, plans' selections by ARN
or tag, list-protected-resources).

Commands:
  add         register a database or a directory; prints its ARN
  list        list the resources registered in the region
  show ARN    show one
  remove ARN  deregister one: it is no longer backed up, its recovery
              points stay and can be restored

A password is never given on the command line, where the shell history and
ps show it: add reads it from standard input (-password-stdin) or from an
environment variable (-password-env VAR). The region keeps it sealed and
never shows it again.
Run "bulwark resource <command> -h" for a command's flags.
`

func (m *Main) resource(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, resourceUsage)
		return errUsage
	}
	cmds := map[string]func(context.Context, []string) error{
		"add":    m.resourceAdd,
		"list":   m.resourceList,
		"show":   m.resourceShow,
		"remove": m.resourceRemove,
	}
	switch cmd, ok := cmds[args[0]]; {
	case ok:
		return cmd(ctx, args[1:])
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(m.Stdout, resourceUsage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "bulwark resource: unknown command %q\n\n%s", args[0], resourceUsage)
		return errUsage
	}
}

// tagFlags collects repeated -tag KEY=VALUE flags.
type tagFlags map[string]string

func (t tagFlags) String() string { return "" }

func (t tagFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	if _, dup := t[k]; dup {
		return fmt.Errorf("tag %q given twice", k)
	}
	t[k] = val
	return nil
}

// maxPassword bounds what -password-stdin reads.
const maxPassword = 64 << 10

// errPasswordFlag refuses a password on the command line.
var errPasswordFlag = errors.New("a password is never given on the command line, where the shell history and ps show it: use -password-stdin (echo \"$PW\" | bulwark resource add ...) or -password-env VAR")

func (m *Main) resourceAdd(ctx context.Context, args []string) error {
	// Refused before anything is parsed, and never repeated back.
	for _, a := range args {
		if a == "--" {
			break
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && strings.EqualFold(name, "password") {
			return errPasswordFlag
		}
	}
	fs := m.flags("resource add")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bulwark resource add -type RDS|EFS -name NAME [flags]\n\n"+
			"Registers a database (RDS: -engine, -host -port -user -database, or -path for SQLite)\n"+
			"or a directory (EFS: -path) with the region at -endpoint, which checks it can reach it.\n\n")
		fs.PrintDefaults()
	}
	af := m.addAdminFlags(fs)
	typ := fs.String("type", "", "RDS for a database, EFS for a directory (required)")
	name := fs.String("name", "", "the resource's name: an RDS one is its ARN's last part (letters, digits, hyphens) (required)")
	engine := fs.String("engine", "", "a database's engine: postgres, mysql, mariadb or sqlite")
	settings := map[string]*string{
		backup.SettingHost:       fs.String("host", "", "the database server's host"),
		backup.SettingPort:       fs.String("port", "", "the database server's port"),
		backup.SettingUser:       fs.String("user", "", "the user the backups log in as"),
		backup.SettingDatabase:   fs.String("database", "", "the database to back up"),
		backup.SettingPath:       fs.String("path", "", "the directory, or a SQLite database's file, on the region's machine"),
		backup.SettingPreBackup:  fs.String("pre-backup", "", "shell command the region runs before each backup (to quiesce)"),
		backup.SettingPostBackup: fs.String("post-backup", "", "shell command the region runs after each backup"),
	}
	tags := tagFlags{}
	fs.Var(tags, "tag", "a tag KEY=VALUE, which backup plans' selections by tag look at (repeatable)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input (up to its first end of line)")
	pwEnv := fs.String("password-env", "", "take the password from this environment variable")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *typ == "" || *name == "":
		fmt.Fprintln(m.Stderr, "usage: bulwark resource add -type RDS|EFS -name NAME [flags] (-h for them)")
		return errUsage
	case *pwStdin && *pwEnv != "":
		return errors.New("-password-stdin or -password-env, not both")
	}
	if p := *settings[backup.SettingPort]; p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("-port %q: a port is a number from 1 to 65535", p)
		}
	}
	password, err := m.password(*pwStdin, *pwEnv)
	if err != nil {
		return err
	}
	in := adminapi.RegisterResourceRequest{ResourceType: strings.ToUpper(*typ), Name: *name, Engine: *engine,
		Settings: map[string]string{}, Password: password, Tags: tags}
	for k, v := range settings {
		if *v != "" {
			in.Settings[k] = *v
		}
	}
	c, err := af.client(m, adminapi.ResourcesPath)
	if err != nil {
		return err
	}
	if password != "" && plainRemote(c.endpoint) {
		fmt.Fprintf(m.Stderr, "warning: the password goes to %s over plain HTTP: serve the region over TLS when it is not on this machine\n", c.endpoint)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var res adminapi.Resource
	raw, err := c.call(ctx, http.MethodPost, "", nil, body, &res)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	printResource(m.Stdout, &res)
	fmt.Fprintf(m.Stdout, "\nBack it up on demand with\n  aws backup start-backup-job --backup-vault-name Default --resource-arn %s --iam-role-arn ROLE\n"+
		"or select it in a backup plan by its ARN or its tags.\n", res.ResourceArn)
	return nil
}

// password reads the password from standard input or the environment;
// "" when neither is asked for.
func (m *Main) password(stdin bool, env string) (string, error) {
	switch {
	case env != "":
		pw := m.Getenv(env)
		if pw == "" {
			return "", fmt.Errorf("-password-env: %s is not set, or empty", env)
		}
		return pw, nil
	case !stdin:
		return "", nil
	case m.Stdin == nil:
		return "", errors.New("-password-stdin: no standard input")
	}
	b, err := io.ReadAll(io.LimitReader(m.Stdin, maxPassword+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("-password-stdin: %w", err)
	case len(b) > maxPassword:
		return "", fmt.Errorf("-password-stdin: more than %d bytes", maxPassword)
	}
	// What echo and a here-string add; the password is the first line.
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", errors.New("-password-stdin: standard input holds no password")
	}
	return pw, nil
}

func (m *Main) resourceList(ctx context.Context, args []string) error {
	fs := m.flags("resource list")
	af := m.addAdminFlags(fs)
	typ := fs.String("type", "", "only resources of this type: RDS or EFS")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := af.client(m, adminapi.ResourcesPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *typ != "" {
		q.Set("type", *typ)
	}
	var out adminapi.ResourceList
	raw, err := c.call(ctx, http.MethodGet, "", q, nil, &out)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	if len(out.Resources) == 0 {
		fmt.Fprintf(m.Stdout, "no resources registered in region %s\n", out.Region)
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tENGINE\tLOCATION\tPASSWORD\tTAGS\tARN")
	for _, r := range out.Resources {
		pw := "-"
		if r.HasPassword {
			pw = "sealed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.ResourceType, orDash(r.Engine), orDash(location(&r)), pw, orDash(tagText(r.Tags)), r.ResourceArn)
	}
	return tw.Flush()
}

func (m *Main) resourceShow(ctx context.Context, args []string) error {
	return m.resourceCall(ctx, "show", http.MethodGet, args, printResource)
}

func (m *Main) resourceRemove(ctx context.Context, args []string) error {
	return m.resourceCall(ctx, "remove", http.MethodDelete, args, func(w io.Writer, r *adminapi.Resource) {
		fmt.Fprintf(w, "deregistered %s resource %s (%s): it is no longer backed up; its recovery points stay and can be restored\n",
			r.ResourceType, r.Name, r.ResourceArn)
	})
}

// resourceCall sends a call about the one resource ARN that args name and
// prints the answer.
func (m *Main) resourceCall(ctx context.Context, cmd, method string, args []string, print func(io.Writer, *adminapi.Resource)) error {
	fs := m.flags("resource " + cmd)
	af := m.addAdminFlags(fs)
	arns, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(arns) != 1 {
		fmt.Fprintf(m.Stderr, "usage: bulwark resource %s [flags] ARN\n", cmd)
		return errUsage
	}
	c, err := af.client(m, adminapi.ResourcesPath)
	if err != nil {
		return err
	}
	var res adminapi.Resource
	raw, err := c.call(ctx, method, "/"+url.PathEscape(arns[0]), nil, nil, &res)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	print(m.Stdout, &res)
	return nil
}

func printResource(w io.Writer, r *adminapi.Resource) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "arn\t%s\n", r.ResourceArn)
	fmt.Fprintf(tw, "type\t%s\n", r.ResourceType)
	fmt.Fprintf(tw, "name\t%s\n", r.Name)
	if r.Engine != "" {
		fmt.Fprintf(tw, "engine\t%s\n", r.Engine)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Settings)) {
		fmt.Fprintf(tw, "%s\t%s\n", k, r.Settings[k])
	}
	if len(r.Tags) > 0 {
		fmt.Fprintf(tw, "tags\t%s\n", tagText(r.Tags))
	}
	pw := "none"
	if r.HasPassword {
		pw = "sealed (never shown)"
	}
	fmt.Fprintf(tw, "password\t%s\n", pw)
	fmt.Fprintf(tw, "registered\t%s\n", r.CreationTime.Local().Format(time.DateTime))
	_ = tw.Flush()
}

// plainRemote reports whether endpoint is plain HTTP to another machine.
func plainRemote(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "http" {
		return false
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		return !ip.IsLoopback()
	}
	return u.Hostname() != "localhost"
}

// location is where a resource is reached: user@host:port/database, or
// its path.
func location(r *adminapi.Resource) string {
	s := r.Settings
	if s[backup.SettingHost] == "" {
		return s[backup.SettingPath]
	}
	loc := s[backup.SettingHost]
	if u := s[backup.SettingUser]; u != "" {
		loc = u + "@" + loc
	}
	if p := s[backup.SettingPort]; p != "" {
		loc += ":" + p
	}
	if d := s[backup.SettingDatabase]; d != "" {
		loc += "/" + d
	}
	return loc
}

func tagText(tags map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}
