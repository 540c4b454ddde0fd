package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// dirValidator checks a directory's registration as the EFS provider
// does at least: its path is an existing directory.
type dirValidator struct{}

func (dirValidator) Validate(_ context.Context, reg *backup.Registered, _ string) error {
	p := reg.Settings[backup.SettingPath]
	if st, err := os.Stat(p); p == "" || err != nil || !st.IsDir() {
		return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("Path %q is not a directory of this region's machine.", p)}
	}
	return nil
}

// dbValidator stands for a database engine's check, which connects: the
// host and port must be given, and the host refuse.invalid refuses the
// login, quoting the password as a careless driver's error might.
type dbValidator struct{}

func (dbValidator) Validate(_ context.Context, reg *backup.Registered, password string) error {
	host, port := reg.Settings[backup.SettingHost], reg.Settings[backup.SettingPort]
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return &backup.Error{Kind: backup.ErrInvalidParameter, Message: "A database is reached at a Host and Port."}
	}
	if host == "refuse.invalid" {
		return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf("%s refused the login of %s with password %q.", host, reg.Settings[backup.SettingUser], password)}
	}
	return nil
}

// withValidators makes the test validators the region's checks of
// registrations (before the region takes any).
func withValidators(rs ...*servertest.Region) {
	for _, r := range rs {
		r.Resources.SetValidator(backup.TypeEFS, dirValidator{})
		r.Resources.SetValidator(backup.TypeRDS, dbValidator{})
	}
}

// resourcesAdmin signs calls to the admin API's v1 as c.
func resourcesAdmin(t *testing.T, r *servertest.Region, c *creds) *admin {
	a := newAdmin(t, r, c.ak, c.sk)
	a.token = c.token
	a.base = "/_bulwark/v1/"
	return a
}

// resourcePath is the path of one resource's calls.
func resourcePath(arn string) string { return "resources/" + url.PathEscape(arn) }

// registerDir registers a directory as c, through the API.
func registerDir(t *testing.T, r *servertest.Region, c *creds, name, dir string, tags map[string]string) adminapi.Resource {
	t.Helper()
	body, _ := json.Marshal(adminapi.RegisterResourceRequest{ResourceType: backup.TypeEFS, Name: name,
		Settings: map[string]string{backup.SettingPath: dir}, Tags: tags})
	var res adminapi.Resource
	resourcesAdmin(t, r, c).ok(http.MethodPost, "resources", body, &res)
	return res
}

// syncBuffer is a log destination tests read while the region writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logTo makes a region log everything, debug included, into buf.
func logTo(buf *syncBuffer) func(*server.Config) {
	return func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// noSecretIn fails when a file under dir holds secret in the clear.
func noSecretIn(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, []byte(secret)) {
			t.Errorf("%s holds the password in the clear", path)
		}
		return err
	})
	mustDo(t, err)
}

// TestResourcesAPI registers a database and a directory, lists, shows and
// deregisters them, and sends every kind of bad registration: each is
// refused with AWS Backup's code and leaves nothing stored. The password
// is in no answer, no log line and no file of the region.
func TestResourcesAPI(t *testing.T) {
	logs := &syncBuffer{}
	r := servertest.Start(t, servertest.Options{Configure: logTo(logs)})
	withValidators(r)
	root := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}
	adm := resourcesAdmin(t, r, root)
	const password = "pw-Zq8!x7-never-shown"
	var answers bytes.Buffer // every answer the test gets
	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		status, raw := adm.call(method, path, []byte(body))
		answers.Write(raw)
		return status, raw
	}
	ok := func(method, path, body string, out any) {
		t.Helper()
		status, raw := call(method, path, body)
		if status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, status, raw)
		}
		mustDo(t, json.Unmarshal(raw, out))
	}
	fails := func(method, path, body string, status int, code string) adminapi.Error {
		t.Helper()
		got, raw := call(method, path, body)
		var e adminapi.Error
		_ = json.Unmarshal(raw, &e)
		if got != status || e.Code != code || e.Message == "" {
			t.Fatalf("%s %s %.200s: got %d %s, want %d %s", method, path, body, got, raw, status, code)
		}
		return e
	}
	count := func() int {
		t.Helper()
		var l adminapi.ResourceList
		ok(http.MethodGet, "resources", "", &l)
		return len(l.Resources)
	}

	dbBody := `{"ResourceType":"RDS","Name":"orders-db","Engine":"Postgres",
		"Settings":{"Host":"db.internal","Port":"5432","User":"backup","Database":"orders","PreBackupCommand":"sync"},
		"Password":"` + password + `","Tags":{"backup":"daily","team":"shop"}}`
	var db adminapi.Resource
	ok(http.MethodPost, "resources", dbBody, &db)
	want := adminapi.Resource{ResourceArn: "arn:aws:rds:us-west-2:" + servertest.AccountID + ":db:orders-db", ResourceType: "RDS",
		Name: "orders-db", Engine: "postgres", HasPassword: true,
		Settings: map[string]string{"Host": "db.internal", "Port": "5432", "User": "backup", "Database": "orders", "PreBackupCommand": "sync"},
		Tags:     map[string]string{"backup": "daily", "team": "shop"}}
	if db.CreationTime.IsZero() {
		t.Fatalf("no CreationTime: %+v", db)
	}
	want.CreationTime = db.CreationTime
	if fmt.Sprint(db) != fmt.Sprint(want) {
		t.Fatalf("registered:\n%+v\nwant\n%+v", db, want)
	}
	// Sealed, and unsealed for the provider as it was given.
	reg, err := r.Resources.Get(bg, servertest.AccountID, db.ResourceArn)
	mustDo(t, err)
	if got, err := r.Resources.Password(reg); err != nil || got != password {
		t.Fatalf("unsealed password %q, %v", got, err)
	}

	dir := t.TempDir()
	var docs adminapi.Resource
	ok(http.MethodPost, "resources", `{"ResourceType":"efs","Name":"team docs","Settings":{"Path":"`+dir+`"}}`, &docs)
	if !backup.OwnsEFS(docs.ResourceArn) || !strings.HasPrefix(docs.ResourceArn, "arn:aws:elasticfilesystem:us-west-2:"+servertest.AccountID+":file-system/fs-") ||
		len(docs.ResourceArn) != len("arn:aws:elasticfilesystem:us-west-2:"+servertest.AccountID+":file-system/fs-")+17 ||
		docs.ResourceType != "EFS" || docs.HasPassword || docs.Engine != "" {
		t.Fatalf("registered directory: %+v", docs)
	}

	// Listed in ARN order, by type; shown one by one, the ARN escaped or
	// not.
	var l adminapi.ResourceList
	ok(http.MethodGet, "resources", "", &l)
	if l.Region != "us-west-2" || len(l.Resources) != 2 || l.Resources[0].ResourceArn != docs.ResourceArn || l.Resources[1].ResourceArn != db.ResourceArn {
		t.Fatalf("list: %+v", l)
	}
	for typ, arn := range map[string]string{"RDS": db.ResourceArn, "efs": docs.ResourceArn} {
		ok(http.MethodGet, "resources?type="+typ, "", &l)
		if len(l.Resources) != 1 || l.Resources[0].ResourceArn != arn {
			t.Fatalf("list of type %s: %+v", typ, l)
		}
	}
	fails(http.MethodGet, "resources?type=S3", "", 400, "InvalidParameterValueException")
	for _, path := range []string{resourcePath(docs.ResourceArn), "resources/" + docs.ResourceArn, resourcePath(db.ResourceArn)} {
		var one adminapi.Resource
		ok(http.MethodGet, path, "", &one)
		if one.ResourceArn != strings.TrimPrefix(path, "resources/") && url.PathEscape(one.ResourceArn) != strings.TrimPrefix(path, "resources/") {
			t.Fatalf("GET %s: %+v", path, one)
		}
	}

	// Bad registrations: refused, nothing stored.
	big := `{"ResourceType":"EFS","Name":"big","Settings":{"Path":"` + dir + `"},"Tags":{"x":"` + strings.Repeat("y", 1<<20) + `"}}`
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"no type", `{"Name":"x","Settings":{"Path":"` + dir + `"}}`, 400, "MissingParameterValueException"},
		{"empty body", ``, 400, "MissingParameterValueException"},
		{"no name", `{"ResourceType":"EFS","Settings":{"Path":"` + dir + `"}}`, 400, "MissingParameterValueException"},
		{"unknown type", `{"ResourceType":"DynamoDB","Name":"t"}`, 400, "InvalidParameterValueException"},
		{"bad RDS name", `{"ResourceType":"RDS","Name":"1-bad--name","Engine":"mysql","Settings":{"Host":"h","Port":"3306"}}`, 400, "InvalidParameterValueException"},
		{"bad engine", `{"ResourceType":"RDS","Name":"x","Engine":"oracle","Settings":{"Host":"h","Port":"1521"}}`, 400, "InvalidParameterValueException"},
		{"no engine", `{"ResourceType":"RDS","Name":"x","Settings":{"Host":"h","Port":"1521"}}`, 400, "InvalidParameterValueException"},
		{"engine of a directory", `{"ResourceType":"EFS","Name":"x","Engine":"postgres","Settings":{"Path":"` + dir + `"}}`, 400, "InvalidParameterValueException"},
		{"password among the settings", `{"ResourceType":"RDS","Name":"x","Engine":"mysql","Settings":{"Host":"h","Port":"3306","password":"` + password + `"}}`, 400, "InvalidParameterValueException"},
		{"reserved tag", `{"ResourceType":"EFS","Name":"x","Settings":{"Path":"` + dir + `"},"Tags":{"aws:x":"y"}}`, 400, "InvalidParameterValueException"},
		{"unknown field", `{"ResourceType":"EFS","Name":"x","Setting":{"Path":"` + dir + `"}}`, 400, "InvalidParameterValueException"},
		{"malformed JSON", `{"ResourceType":"EFS","Name":"x",`, 400, "SerializationException"},
		{"not an object", `["EFS"]`, 400, "SerializationException"},
		{"two objects", `{"ResourceType":"EFS"}{"Name":"x"}`, 400, "SerializationException"},
		{"trailing brace", `{"ResourceType":"EFS","Name":"x","Settings":{"Path":"` + dir + `"}}}`, 400, "SerializationException"},
		{"wrong type of value", `{"ResourceType":"EFS","Name":"x","Password":12}`, 400, "SerializationException"},
		{"oversized", big, 413, "RequestEntityTooLargeException"},
		{"validator: no such directory", `{"ResourceType":"EFS","Name":"x","Settings":{"Path":"` + dir + `/missing"}}`, 400, "InvalidParameterValueException"},
		{"validator: no port", `{"ResourceType":"RDS","Name":"x","Engine":"mysql","Settings":{"Host":"h"},"Password":"` + password + `"}`, 400, "InvalidParameterValueException"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fails(http.MethodPost, "resources", c.body, c.status, c.code)
		})
	}
	if n := count(); n != 2 {
		t.Fatalf("%d resources after bad registrations, want 2", n)
	}
	// A validator's refusal that quotes the password is shown without it.
	e := fails(http.MethodPost, "resources", `{"ResourceType":"RDS","Name":"x","Engine":"mysql","Settings":{"Host":"refuse.invalid","Port":"3306","User":"u"},"Password":"`+password+`"}`,
		400, "InvalidParameterValueException")
	if !strings.Contains(e.Message, "refuse.invalid refused the login of u") {
		t.Fatalf("refusal: %s", e.Message)
	}

	// A second registration of a name: AlreadyExists, with the ARN.
	e = fails(http.MethodPost, "resources", dbBody, 400, "AlreadyExistsException")
	if e.Arn != db.ResourceArn {
		t.Fatalf("AlreadyExists names %q, want %s", e.Arn, db.ResourceArn)
	}
	e = fails(http.MethodPost, "resources", `{"ResourceType":"EFS","Name":"team docs","Settings":{"Path":"`+dir+`"}}`, 400, "AlreadyExistsException")
	if e.Arn != docs.ResourceArn {
		t.Fatalf("AlreadyExists names %q, want %s", e.Arn, docs.ResourceArn)
	}

	// Not an ARN of a registered resource's form; one of another region
	// that the deployment has not.
	fails(http.MethodGet, "resources/arn:aws:s3:::a-bucket", "", 400, "InvalidParameterValueException")
	fails(http.MethodGet, "resources/", "", 400, "MissingParameterValueException")
	fails(http.MethodGet, resourcePath(backup.RDSARN("eu-north-9", servertest.AccountID, "orders-db")), "", 400, "InvalidParameterValueException")
	fails(http.MethodPost, "resources?region=eu-north-9", dbBody, 400, "InvalidParameterValueException")

	// Another account sees none of it, and can remove none of it; its
	// names are its own.
	other := resourcesAdmin(t, r, &creds{ak: servertest.OtherAccessKey, sk: servertest.OtherSecretKey})
	var ol adminapi.ResourceList
	other.ok(http.MethodGet, "resources", nil, &ol)
	if len(ol.Resources) != 0 {
		t.Fatalf("another account lists %+v", ol)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		msg := other.fails(m, resourcePath(db.ResourceArn), nil, 404, "ResourceNotFoundException")
		if strings.Contains(msg, "db.internal") {
			t.Fatalf("another account is shown %s", msg)
		}
	}
	var theirs adminapi.Resource
	other.ok(http.MethodPost, "resources", []byte(dbBody), &theirs)
	if theirs.ResourceArn != "arn:aws:rds:us-west-2:"+servertest.OtherAccountID+":db:orders-db" {
		t.Fatalf("another account's registration: %+v", theirs)
	}

	// Deregistered: gone, and a second time not found.
	var gone adminapi.Resource
	ok(http.MethodDelete, resourcePath(db.ResourceArn), "", &gone)
	if gone.ResourceArn != db.ResourceArn {
		t.Fatalf("deregistered %+v", gone)
	}
	fails(http.MethodGet, resourcePath(db.ResourceArn), "", 404, "ResourceNotFoundException")
	fails(http.MethodDelete, resourcePath(db.ResourceArn), "", 404, "ResourceNotFoundException")
	if n := count(); n != 1 {
		t.Fatalf("%d resources after deregistering one, want 1", n)
	}
	var still adminapi.Resource
	other.ok(http.MethodGet, resourcePath(theirs.ResourceArn), nil, &still)

	if bytes.Contains(answers.Bytes(), []byte(password)) {
		t.Errorf("an answer shows the password:\n%s", answers.String())
	}
	if bytes.Contains(answers.Bytes(), []byte("Sealed")) {
		t.Errorf("an answer shows the sealed password")
	}
	if !strings.Contains(logs.String(), "registered resource") {
		t.Errorf("registrations are not logged:\n%s", logs)
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the log shows the password:\n%s", logs)
	}
	noSecretIn(t, r.Dir, password)
}

// TestResourcesAPIAuthorization checks that IAM users of the account need
// Bulwark's actions: to register on "*", to show and deregister on the
// resource's ARN.
func TestResourcesAPIAuthorization(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	withValidators(r)
	st, a := r.IAM, servertest.AccountID
	nobody := userWithKey(t, st, a, "nobody", "")
	registrar := userWithKey(t, st, a, "registrar", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"bulwark:RegisterResource","Resource":"*"}]}`)
	prodOnly := userWithKey(t, st, a, "prod-only", `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["bulwark:DescribeResource","bulwark:DeregisterResource"],"Resource":"arn:aws:rds:*:*:db:prod-*"},
	  {"Effect":"Allow","Action":"bulwark:ListResources","Resource":"*"}]}`)
	body := func(name string) []byte {
		return []byte(`{"ResourceType":"RDS","Name":"` + name + `","Engine":"mysql","Settings":{"Host":"h","Port":"3306"},"Password":"p"}`)
	}

	// Without bulwark:RegisterResource: refused before the body is read.
	resourcesAdmin(t, r, nobody).fails(http.MethodPost, "resources", body("prod-a"), 403, "AccessDenied")
	resourcesAdmin(t, r, nobody).fails(http.MethodPost, "resources", []byte(`{malformed`), 403, "AccessDenied")
	resourcesAdmin(t, r, nobody).fails(http.MethodGet, "resources", nil, 403, "AccessDenied")
	// With it: allowed, and nothing else.
	reg := resourcesAdmin(t, r, registrar)
	var prod, dev adminapi.Resource
	reg.ok(http.MethodPost, "resources", body("prod-a"), &prod)
	reg.ok(http.MethodPost, "resources", body("dev-a"), &dev)
	reg.fails(http.MethodGet, "resources", nil, 403, "AccessDenied")
	reg.fails(http.MethodGet, resourcePath(prod.ResourceArn), nil, 403, "AccessDenied")
	reg.fails(http.MethodDelete, resourcePath(prod.ResourceArn), nil, 403, "AccessDenied")

	// A policy on ARNs: the prod databases only.
	p := resourcesAdmin(t, r, prodOnly)
	var one adminapi.Resource
	p.ok(http.MethodGet, resourcePath(prod.ResourceArn), nil, &one)
	p.fails(http.MethodGet, resourcePath(dev.ResourceArn), nil, 403, "AccessDenied")
	p.fails(http.MethodDelete, resourcePath(dev.ResourceArn), nil, 403, "AccessDenied")
	// Refused before the lookup: a name that is not registered is refused
	// the same way.
	p.fails(http.MethodGet, resourcePath(backup.RDSARN("us-west-2", a, "dev-nosuch")), nil, 403, "AccessDenied")
	p.fails(http.MethodGet, resourcePath(backup.RDSARN("us-west-2", a, "prod-nosuch")), nil, 404, "ResourceNotFoundException")
	p.fails(http.MethodPost, "resources", body("prod-b"), 403, "AccessDenied")
	p.ok(http.MethodDelete, resourcePath(prod.ResourceArn), nil, &one)
	var l adminapi.ResourceList
	p.ok(http.MethodGet, "resources", nil, &l)
	if len(l.Resources) != 1 || l.Resources[0].ResourceArn != dev.ResourceArn {
		t.Fatalf("after deregistering prod-a: %+v", l)
	}
}

// TestResourcesInAnotherRegion registers a database in us-east-1 through
// us-west-2's endpoint: the registration is us-east-1's, its ARN says so,
// and the calls that name it are passed on there from any endpoint.
func TestResourcesInAnotherRegion(t *testing.T) {
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	withValidators(west, east)
	root := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}
	w := resourcesAdmin(t, west, root)
	body := []byte(`{"ResourceType":"RDS","Name":"ledger","Engine":"mariadb","Settings":{"Host":"h","Port":"3306"},"Password":"p"}`)
	var res adminapi.Resource
	w.ok(http.MethodPost, "resources?region=us-east-1", body, &res)
	if res.ResourceArn != backup.RDSARN("us-east-1", servertest.AccountID, "ledger") {
		t.Fatalf("registered %+v", res)
	}
	if _, err := east.Resources.Get(bg, servertest.AccountID, res.ResourceArn); err != nil {
		t.Fatalf("us-east-1 does not hold it: %v", err)
	}
	var l adminapi.ResourceList
	w.ok(http.MethodGet, "resources", nil, &l)
	if l.Region != "us-west-2" || len(l.Resources) != 0 {
		t.Fatalf("us-west-2's list: %+v", l)
	}
	w.ok(http.MethodGet, "resources?region=us-east-1", nil, &l)
	if l.Region != "us-east-1" || len(l.Resources) != 1 {
		t.Fatalf("us-east-1's list: %+v", l)
	}
	// The same name is free in us-west-2: another region, another ARN.
	var westLedger adminapi.Resource
	w.ok(http.MethodPost, "resources", body, &westLedger)
	if westLedger.ResourceArn != backup.RDSARN("us-west-2", servertest.AccountID, "ledger") {
		t.Fatalf("registered %+v", westLedger)
	}
	// us-east-1 authorizes the calls passed on: a user without policies is
	// refused there, and a forged "passed on" header does not keep the
	// call here.
	bob := userWithKey(t, west.IAM, servertest.AccountID, "bob", "")
	resourcesAdmin(t, west, bob).fails(http.MethodGet, resourcePath(res.ResourceArn), nil, 403, "AccessDenied")
	forged := resourcesAdmin(t, west, root)
	forged.forwardedHeader = "us-east-1"
	forged.fails(http.MethodGet, resourcePath(res.ResourceArn), nil, 400, "InvalidRequestException")
	var one adminapi.Resource
	w.ok(http.MethodGet, resourcePath(res.ResourceArn), nil, &one)
	w.ok(http.MethodDelete, resourcePath(res.ResourceArn), nil, &one)
	if _, err := east.Resources.Get(bg, servertest.AccountID, res.ResourceArn); err == nil {
		t.Fatal("us-east-1 still holds it")
	}
	if _, err := west.Resources.Get(bg, servertest.AccountID, westLedger.ResourceArn); err != nil {
		t.Fatalf("us-west-2's own ledger: %v", err)
	}
	w.fails(http.MethodGet, resourcePath(res.ResourceArn), nil, 404, "ResourceNotFoundException")
}
