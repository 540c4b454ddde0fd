package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/cli"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// acceptAll stands for a provider's check of a registration: a directory
// must exist; a database is taken at its word.
type acceptAll struct{}

func (acceptAll) Validate(_ context.Context, reg *backup.Registered, _ string) error {
	if p := reg.Settings[backup.SettingPath]; reg.Type == backup.TypeEFS {
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("Path %q is not a directory.", p)}
		}
	}
	return nil
}

// runStdin runs the command with stdin as its standard input.
func runStdin(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &cli.Main{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin), Getenv: func(k string) string { return env[k] }}
	code = m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// TestResourceCommand registers a database and a directory with `bulwark
// resource add`, lists, shows and removes them, and checks that the
// password goes in only through standard input or the environment and
// comes out nowhere.
func TestResourceCommand(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	r.Resources.SetValidator(backup.TypeRDS, acceptAll{})
	r.Resources.SetValidator(backup.TypeEFS, acceptAll{})
	env := ownerEnv(r.URL())
	const password = "s3cr3t-Pass-word"
	var printed strings.Builder // all the commands print
	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		code, stdout, stderr := runStdin(t, env, stdin, args...)
		printed.WriteString(stdout + stderr)
		return code, stdout, stderr
	}

	code, stdout, stderr := run(password+"\n", "resource", "add", "--type", "rds", "--name", "orders-db", "--engine", "postgres",
		"--host", "db.internal", "--port", "5432", "--user", "backup", "--database", "orders",
		"--pre-backup", "sync", "--tag", "backup=daily", "--tag", "team=shop", "--password-stdin")
	dbARN := "arn:aws:rds:us-west-2:" + servertest.AccountID + ":db:orders-db"
	if code != 0 || !strings.Contains(stdout, dbARN) || !strings.Contains(stdout, "sealed") || !strings.Contains(stdout, "start-backup-job") {
		t.Fatalf("add: %d\n%s\n%s", code, stdout, stderr)
	}
	reg, err := r.Resources.Get(context.Background(), servertest.AccountID, dbARN)
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := r.Resources.Password(reg); err != nil || pw != password {
		t.Fatalf("stored password %q, %v", pw, err)
	}
	want := map[string]string{"Host": "db.internal", "Port": "5432", "User": "backup", "Database": "orders", "PreBackupCommand": "sync"}
	if fmt.Sprint(reg.Settings) != fmt.Sprint(want) || reg.Engine != "postgres" || fmt.Sprint(reg.Tags) != "map[backup:daily team:shop]" {
		t.Fatalf("registered %+v", reg)
	}

	dir := t.TempDir()
	env["DOCS_PW"] = password
	code, stdout, stderr = run("", "resource", "add", "--json", "--type", "EFS", "--name", "docs", "--path", dir, "--password-env", "DOCS_PW")
	var docs adminapi.Resource
	if code != 0 || json.Unmarshal([]byte(stdout), &docs) != nil || !backup.OwnsEFS(docs.ResourceArn) || !docs.HasPassword {
		t.Fatalf("add -json: %d\n%s\n%s", code, stdout, stderr)
	}

	// The table, the JSON, by type.
	code, stdout, _ = run("", "resource", "list")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(stdout, "backup@db.internal:5432/orders") || !strings.Contains(stdout, dir) ||
		!strings.Contains(stdout, "backup=daily,team=shop") || !strings.Contains(stdout, docs.ResourceArn) {
		t.Fatalf("list: %d\n%s", code, stdout)
	}
	var l adminapi.ResourceList
	code, stdout, _ = run("", "resource", "list", "--type", "RDS", "--json")
	if code != 0 || json.Unmarshal([]byte(stdout), &l) != nil || len(l.Resources) != 1 || l.Resources[0].ResourceArn != dbARN {
		t.Fatalf("list -type RDS -json: %d\n%s", code, stdout)
	}
	code, stdout, _ = run("", "resource", "show", docs.ResourceArn)
	if code != 0 || !strings.Contains(stdout, "Path") || !strings.Contains(stdout, dir) || !strings.Contains(stdout, "sealed") {
		t.Fatalf("show: %d\n%s", code, stdout)
	}

	// Refusals: a password on the command line (not repeated back), two
	// sources of it, none on stdin, a second registration of a name (with
	// the ARN), another account's resource.
	for _, args := range [][]string{
		{"--password", password},
		{"--password=" + password},
		{"-Password", password},
	} {
		code, stdout, stderr = run("", append([]string{"resource", "add", "--type", "RDS", "--name", "x", "--engine", "mysql"}, args...)...)
		if code != 1 || !strings.Contains(stderr, "never given on the command line") {
			t.Fatalf("add %v: %d\n%s\n%s", args, code, stdout, stderr)
		}
	}
	if code, _, stderr = run(password, "resource", "add", "--type", "RDS", "--name", "x", "--engine", "mysql", "--password-stdin", "--password-env", "DOCS_PW"); code != 1 || !strings.Contains(stderr, "not both") {
		t.Fatalf("two password sources: %d %s", code, stderr)
	}
	if code, _, stderr = run("\n", "resource", "add", "--type", "RDS", "--name", "x", "--engine", "mysql", "--password-stdin"); code != 1 || !strings.Contains(stderr, "no password") {
		t.Fatalf("empty stdin: %d %s", code, stderr)
	}
	if code, _, stderr = run("", "resource", "add", "--type", "RDS", "--name", "x", "--engine", "mysql", "--password-env", "UNSET"); code != 1 || !strings.Contains(stderr, "UNSET is not set") {
		t.Fatalf("unset variable: %d %s", code, stderr)
	}
	if code, _, stderr = run("", "resource", "add", "--type", "RDS", "--name", "x", "--port", "http"); code != 1 || !strings.Contains(stderr, "-port") {
		t.Fatalf("bad port: %d %s", code, stderr)
	}
	if code, _, stderr = run("", "resource", "add", "--name", "x"); code != 2 {
		t.Fatalf("no type: %d %s", code, stderr)
	}
	code, _, stderr = run(password, "resource", "add", "--type", "RDS", "--name", "orders-db", "--engine", "mysql", "--password-stdin")
	if code != 1 || !strings.Contains(stderr, "AlreadyExistsException") || !strings.Contains(stderr, dbARN) {
		t.Fatalf("second registration: %d %s", code, stderr)
	}
	if code, _, stderr = run("", "resource", "add", "--type", "EFS", "--name", "gone", "--path", dir+"/missing"); code != 1 || !strings.Contains(stderr, "InvalidParameterValueException") {
		t.Fatalf("missing directory: %d %s", code, stderr)
	}
	other := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_ACCESS_KEY_ID": servertest.OtherAccessKey, "AWS_SECRET_ACCESS_KEY": servertest.OtherSecretKey}
	for _, cmd := range []string{"show", "remove"} {
		code, stdout, stderr := runCommand(t, other, "resource", cmd, dbARN)
		if code != 1 || !strings.Contains(stderr, "ResourceNotFoundException") || strings.Contains(stdout+stderr, "db.internal") {
			t.Fatalf("another account's %s: %d\n%s\n%s", cmd, code, stdout, stderr)
		}
	}
	if code, stdout, _ := runCommand(t, other, "resource", "list"); code != 0 || !strings.Contains(stdout, "no resources registered in region us-west-2") {
		t.Fatalf("another account's list: %d\n%s", code, stdout)
	}

	code, stdout, stderr = run("", "resource", "remove", dbARN)
	if code != 0 || !strings.Contains(stdout, "deregistered RDS resource orders-db") {
		t.Fatalf("remove: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr = run("", "resource", "show", dbARN); code != 1 || !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Fatalf("show after remove: %d %s", code, stderr)
	}
	if code, stdout, _ = run("", "resource", "list", "--json"); code != 0 || json.Unmarshal([]byte(stdout), &l) != nil || len(l.Resources) != 1 {
		t.Fatalf("list after remove: %d\n%s", code, stdout)
	}
	if strings.Contains(printed.String(), password) {
		t.Fatalf("a command printed the password:\n%s", printed.String())
	}
}
