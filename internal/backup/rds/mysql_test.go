package rds_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// mariadbServer is a server the tests use: the machine's (127.0.0.1:3306,
// root without a password) or a private one.
type mariadbServer struct {
	host string
	port int
}

// machineMariaDB returns the machine's MariaDB server, skipping the test
// when it does not answer (failing it under CI=true).
func machineMariaDB(t *testing.T) mariadbServer {
	t.Helper()
	servertest.RequireTool(t, "mariadb")
	servertest.RequireTool(t, "mariadb-dump")
	srv := mariadbServer{host: "127.0.0.1", port: 3306}
	if out, err := srv.try("", "SELECT 1"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("MariaDB at 127.0.0.1:3306 is required under CI=true: %v %s", err, out)
		}
		t.Skipf("MariaDB at 127.0.0.1:3306 does not answer: %s", out)
	}
	return srv
}

func (s mariadbServer) try(db, sql string) (string, error) {
	args := []string{"--no-defaults", "-h", s.host, "-P", strconv.Itoa(s.port), "-uroot", "--batch", "--skip-column-names", "-e", sql}
	if db != "" {
		args = append(args, "--database="+db)
	}
	out, err := exec.Command("mariadb", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s mariadbServer) exec(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := s.try(db, sql)
	if err != nil {
		t.Fatalf("mariadb %s: %v: %s", sql, err, out)
	}
	return out
}

func (s mariadbServer) int(t *testing.T, db, sql string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s.exec(t, db, sql), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s mariadbServer) settings(db string) map[string]string {
	return map[string]string{backup.SettingHost: s.host, backup.SettingPort: strconv.Itoa(s.port), backup.SettingUser: "root", backup.SettingDatabase: db}
}

// database makes a database of a unique name, dropped at the end of the
// test, with the names of its restored copies dropped too.
func (s mariadbServer) database(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d_%04d", prefix, time.Now().Unix()%1000000, rand.IntN(10000))
	s.exec(t, "", "CREATE DATABASE "+name)
	t.Cleanup(func() {
		out, _ := s.try("", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '"+name+"%'")
		for _, db := range strings.Fields(out) {
			_, _ = s.try("", "DROP DATABASE IF EXISTS `"+db+"`")
		}
	})
	return name
}

// newBankMariaDB fills db with accounts holding accounts * accountBalance
// in total, a ledger numbered 1..n, a view, a trigger and a routine.
func newBankMariaDB(t *testing.T, s mariadbServer, db string) {
	s.exec(t, db, fmt.Sprintf(`
CREATE TABLE acct (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TABLE ledger (n INT PRIMARY KEY, pad VARBINARY(200), at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;
CREATE TABLE filler (id INT AUTO_INCREMENT PRIMARY KEY, x BLOB) ENGINE=InnoDB;
INSERT INTO acct SELECT seq, %d FROM seq_1_to_%d;
INSERT INTO filler (x) SELECT RANDOM_BYTES(200) FROM seq_1_to_20000;
INSERT INTO ledger (n, pad) VALUES (1, RANDOM_BYTES(100));
CREATE VIEW total AS SELECT SUM(bal) AS total FROM acct;
CREATE TRIGGER no_negative BEFORE UPDATE ON acct FOR EACH ROW SET NEW.bal = NEW.bal;
CREATE FUNCTION ledger_rows() RETURNS INT READS SQL DATA RETURN (SELECT COUNT(*) FROM ledger);
`, accountBalance, accounts))
}

func mariadbTx(i int) string {
	from, to, k := i%accounts+1, (i*7+3)%accounts+1, i%13+1
	return fmt.Sprintf("START TRANSACTION; UPDATE acct SET bal = bal - %d WHERE id = %d; UPDATE acct SET bal = bal + %d WHERE id = %d; "+
		"INSERT INTO ledger (n, pad) SELECT MAX(n) + 1, RANDOM_BYTES(100) FROM ledger; COMMIT;\n", k, from, k, to)
}

func startMariaDBWriter(t *testing.T, s mariadbServer, db string) *bankWriter {
	return startBankWriter(t, "mariadb", []string{"--no-defaults", "-h", s.host, "-P", strconv.Itoa(s.port), "-uroot", "--batch", "--database=" + db}, mariadbTx)
}

// checkBank checks the invariants of a restored bank: the total, the
// ledger without gaps, the view, trigger and routine; it returns the
// ledger's rows.
func checkBank(t *testing.T, s mariadbServer, db string) int64 {
	t.Helper()
	if total := s.int(t, db, "SELECT total FROM total"); total != accounts*accountBalance {
		t.Fatalf("%s: total %d, want %d", db, total, accounts*accountBalance)
	}
	rows, max := s.int(t, db, "SELECT COUNT(*) FROM ledger"), s.int(t, db, "SELECT MAX(n) FROM ledger")
	if rows != max {
		t.Fatalf("%s: ledger has %d rows numbered up to %d", db, rows, max)
	}
	if f := s.int(t, db, "SELECT ledger_rows()"); f != rows {
		t.Fatalf("%s: ledger_rows() = %d, want %d", db, f, rows)
	}
	if n := s.int(t, db, "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()"); n != 1 {
		t.Fatalf("%s: %d triggers", db, n)
	}
	return rows
}

// TestMySQLBackupDuringWrites backs up a MariaDB database while a writer
// moves money and numbers ledger rows in transactions, restores it into a
// new database, and finds a state the database really had.
func TestMySQLBackupDuringWrites(t *testing.T) {
	srv := machineMariaDB(t)
	h := newEngineHarness(t)
	db := srv.database(t, "bwshop")
	newBankMariaDB(t, srv, db)
	arn := h.mustRegister("shop", "mariadb", srv.settings(db), "")

	w := startMariaDBWriter(t, srv, db)
	count := func() int64 { return srv.int(t, db, "SELECT COUNT(*) FROM ledger") }
	before := waitGrowth(t, 1, count)
	j := h.mustBackup(arn)
	waitGrowth(t, count(), count)
	if err := w.Stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	final := count()

	point := aws.ToString(j.RecoveryPointArn)
	md := h.restoreMetadata(point)
	if md["SourceDatabase"] != db || md["Engine"] != "mariadb" || md["TargetHost"] != "127.0.0.1" || md["ServerVersion"] == "" {
		t.Fatalf("restore metadata: %v", md)
	}
	logBin := srv.exec(t, "", "SELECT @@log_bin") == "1"
	if !logBin && !strings.Contains(md["PointInTimeRecovery"], "unavailable: binary logging is off") {
		t.Fatalf("PointInTimeRecovery: %q", md["PointInTimeRecovery"])
	}
	target := db + "_restored"
	rj := h.restore(point, map[string]string{"TargetDatabase": target})
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	wantARN := backup.RDSARN("us-west-2", servertest.AccountID, strings.ReplaceAll(target, "_", "-"))
	if got := aws.ToString(rj.CreatedResourceArn); got != wantARN {
		t.Fatalf("created resource %s, want %s", got, wantARN)
	}
	rows := checkBank(t, srv, target)
	if rows <= before || rows >= final {
		t.Fatalf("restored ledger has %d rows; the writer had %d when the backup started and %d at the end", rows, before, final)
	}
	t.Logf("ledger: %d rows at the backup's start, %d restored, %d at the end; dump %d bytes", before, rows, final, aws.ToInt64(j.BackupSizeInBytes))
	if n := srv.int(t, target, "SELECT COUNT(*) FROM filler"); n != 20000 {
		t.Fatalf("restored filler has %d rows", n)
	}

	// Refusals, when the restore is asked for.
	for _, c := range []struct {
		md         map[string]string
		code, want string
	}{
		{map[string]string{}, "MissingParameterValueException", "TargetDatabase"},
		{map[string]string{"TargetDatabase": target}, "InvalidParameterValueException", "exists already"},
		{map[string]string{"TargetDatabase": db}, "InvalidParameterValueException", "the backed-up database itself"},
		{map[string]string{"TargetDatabase": "bad-name"}, "InvalidParameterValueException", "Invalid TargetDatabase"},
		{map[string]string{"TargetDatabase": target + "2", "TargetUser": "nobody_here", "TargetPassword": "x"}, "InvalidParameterValueException", "refused user nobody_here"},
	} {
		_, err := h.startRestore(point, c.md)
		wantRefused(t, err, c.code, c.want)
	}
	if !logBin {
		_, err := h.startRestore(point, map[string]string{"TargetDatabase": target + "2", "RestoreTime": time.Now().UTC().Format(time.RFC3339)})
		wantRefused(t, err, "InvalidParameterValueException", "log_bin=OFF")
	}
	// No scratch file or option file outlives its job.
	if left, _ := filepath.Glob(filepath.Join(h.r.Dir, "tmp", "*")); len(left) != 0 {
		t.Fatalf("left in the scratch directory: %v", left)
	}
}

// TestMySQLRefusals: a server that cannot be reached, a wrong password,
// a database that does not exist, a missing tool, another account's
// resource: each is refused with a message saying which, and a backup
// that cannot be made fails.
func TestMySQLRefusals(t *testing.T) {
	srv := machineMariaDB(t)
	h := newEngineHarness(t)
	db := srv.database(t, "bwrefuse")
	srv.exec(t, db, "CREATE TABLE t (x INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t VALUES (1), (2), (3);")

	// A user whose password has every character an option file quotes.
	user := fmt.Sprintf("bw_%d", rand.IntN(1000000))
	password := `p"a\s s#w'd;x=`
	srv.exec(t, "", fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; GRANT ALL ON `%s`.* TO '%s'@'127.0.0.1'",
		user, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password), db, user))
	t.Cleanup(func() { _, _ = srv.try("", "DROP USER IF EXISTS '"+user+"'@'127.0.0.1'") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	settings := func(change func(map[string]string)) map[string]string {
		s := srv.settings(db)
		s[backup.SettingUser] = user
		change(s)
		return s
	}
	for _, c := range []struct {
		name     string
		settings map[string]string
		password string
		kind     error
		want     string
	}{
		{"unreachable", settings(func(s map[string]string) { s[backup.SettingPort] = strconv.Itoa(closedPort) }), password, backup.ErrInvalidParameter, "Cannot reach"},
		{"wrongpw", settings(func(map[string]string) {}), "not-the-password", backup.ErrInvalidParameter, "wrong user or password"},
		{"nodb", settings(func(s map[string]string) { s[backup.SettingDatabase] = db + "_missing" }), "", backup.ErrInvalidParameter, "does not exist"},
		{"nodbname", settings(func(s map[string]string) { delete(s, backup.SettingDatabase) }), password, backup.ErrMissingParameter, "Missing setting Database"},
		{"badport", settings(func(s map[string]string) { s[backup.SettingPort] = "http" }), password, backup.ErrInvalidParameter, "Invalid Port"},
	} {
		if c.name == "nodb" {
			c.settings[backup.SettingUser] = "root"
		}
		_, err := h.register(c.name, "mariadb", c.settings, c.password)
		wantInvalid(t, err, c.kind, c.want)
	}
	t.Run("no tool", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := h.register("notool", "mysql", settings(func(map[string]string) {}), password)
		wantInvalid(t, err, backup.ErrInvalidParameter, "mariadb-dump or mysqldump program is not installed")
	})

	// The user with the difficult password backs up and restores.
	arn := h.mustRegister("shop", "mysql", settings(func(map[string]string) {}), password)
	j := h.mustBackup(arn)
	point := aws.ToString(j.RecoveryPointArn)
	rj := h.restore(point, map[string]string{"TargetDatabase": db + "_copy", "TargetUser": "root", "TargetPassword": ""})
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if n := srv.int(t, db+"_copy", "SELECT SUM(x) FROM t"); n != 6 {
		t.Fatalf("restored sum %d", n)
	}
	for _, k := range []string{"TargetPassword", password} {
		if strings.Contains(fmt.Sprint(*rj), k) {
			t.Fatalf("restore job shows %q", k)
		}
	}

	other := engineSDK(h.r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	_, err = other.StartBackupJob(context.Background(), &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(arn), IamRoleArn: aws.String("arn:aws:iam::" + servertest.OtherAccountID + ":role/backup")})
	wantRefused(t, err, "InvalidParameterValueException", "another account")

	// A restore that fails part way drops the database it created: a
	// user that may create the target database but not insert into it.
	loader := user + "_l"
	failed := db + "_fail"
	srv.exec(t, "", fmt.Sprintf("CREATE USER '%s'@'127.0.0.1'; GRANT CREATE, DROP, SELECT ON `%s`.* TO '%s'@'127.0.0.1'", loader, failed, loader))
	t.Cleanup(func() { _, _ = srv.try("", "DROP USER IF EXISTS '"+loader+"'@'127.0.0.1'") })
	rj = h.restore(point, map[string]string{"TargetDatabase": failed, "TargetUser": loader, "TargetPassword": ""})
	if rj.Status != types.RestoreJobStatusFailed || !strings.Contains(aws.ToString(rj.StatusMessage), "denied") {
		t.Fatalf("restore without INSERT: %s %q", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if n := srv.int(t, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+failed+"'"); n != 0 {
		t.Fatalf("the failed restore left database %s", failed)
	}
	t.Logf("failed restore: %s", aws.ToString(rj.StatusMessage))

	// The password changes after registration: the job fails, saying
	// why, and records no point.
	srv.exec(t, "", fmt.Sprintf("ALTER USER '%s'@'127.0.0.1' IDENTIFIED BY 'changed'", user))
	j = h.backup(arn)
	if j.State != types.BackupJobStateFailed || !strings.Contains(aws.ToString(j.StatusMessage), "wrong user or password") || aws.ToString(j.RecoveryPointArn) != "" {
		t.Fatalf("backup with a changed password: %s %q %s", j.State, aws.ToString(j.StatusMessage), aws.ToString(j.RecoveryPointArn))
	}
	// The database is dropped: the job fails.
	srv.exec(t, "", fmt.Sprintf("ALTER USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", user, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(password)))
	srv.exec(t, "", "DROP DATABASE "+db)
	j = h.backup(arn)
	if j.State != types.BackupJobStateFailed || aws.ToString(j.StatusMessage) == "" {
		t.Fatalf("backup of a dropped database: %s %q", j.State, aws.ToString(j.StatusMessage))
	}
	t.Logf("backup of a dropped database: %s", aws.ToString(j.StatusMessage))
}

// privateMariaDB starts a MariaDB server of the test's own, writing a
// row-format binary log with strict GTIDs, on a free port of loopback,
// root without a password; it is stopped at the end of the test.
func privateMariaDB(t *testing.T) mariadbServer {
	t.Helper()
	servertest.RequireTool(t, "mariadb")
	servertest.RequireTool(t, "mariadb-dump")
	servertest.RequireTool(t, "mysqlbinlog")
	install := servertest.RequireTool(t, "mariadb-install-db")
	mariadbd := "/usr/sbin/mariadbd"
	if p, err := exec.LookPath("mariadbd"); err == nil {
		mariadbd = p
	} else if _, err := os.Stat(mariadbd); err != nil {
		servertest.RequireTool(t, "mariadbd")
	}
	dir, err := os.MkdirTemp("", "bwmariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	user := "--user=root"
	if os.Geteuid() != 0 {
		user = "--user=" + os.Getenv("USER")
	}
	if out, err := exec.Command(install, "--no-defaults", user, "--datadir="+data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(mariadbd, "--no-defaults", user, "--datadir="+data, "--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--socket="+filepath.Join(dir, "sock"), "--pid-file="+filepath.Join(dir, "pid"), "--log-error="+filepath.Join(dir, "error.log"),
		"--log-bin="+filepath.Join(data, "binlog"), "--server-id=7", "--binlog-format=ROW", "--gtid-strict-mode=1",
		"--innodb-buffer-pool-size=32M", "--skip-name-resolve")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	srv := mariadbServer{host: "127.0.0.1", port: port}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := srv.try("", "SELECT 1"); err == nil {
			return srv
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("mariadbd exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("mariadbd did not answer\n%s", log)
		}
	}
}

// nextSecond sleeps into the next second and returns its start: every
// event before the call is stamped earlier, every event after it not.
func nextSecond() time.Time {
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	return time.Now().UTC().Truncate(time.Second)
}

// TestMySQLPointInTimeRestore restores a database to instants between two
// backups, from the first backup's snapshot and the binary log the second
// one captured, into new databases of the same server.
func TestMySQLPointInTimeRestore(t *testing.T) {
	srv := privateMariaDB(t)
	h := newEngineHarness(t)
	db := srv.database(t, "bwpitr")
	other := srv.database(t, "bwother")
	srv.exec(t, db, "CREATE TABLE ledger (n INT PRIMARY KEY, phase CHAR(1)) ENGINE=InnoDB; INSERT INTO ledger VALUES (1, '0'), (2, '0');")
	arn := h.mustRegister("pitr", "mariadb", srv.settings(db), "")

	j1 := h.mustBackup(arn)
	md1 := h.restoreMetadata(aws.ToString(j1.RecoveryPointArn))
	if md1["PointInTimeRecovery"] != "available" || !strings.Contains(md1["PointInTimeRecoveryNote"], "first backup") {
		t.Fatalf("first point's metadata: %v", md1)
	}
	srv.exec(t, db, "INSERT INTO ledger SELECT seq, 'A' FROM seq_3_to_12; UPDATE ledger SET phase = 'a' WHERE n = 1;")
	srv.exec(t, other, "CREATE TABLE ledger (n INT PRIMARY KEY, phase CHAR(1)); INSERT INTO ledger VALUES (100, 'X');")
	atA := nextSecond()
	srv.exec(t, db, "INSERT INTO ledger SELECT seq, 'B' FROM seq_13_to_20; DELETE FROM ledger WHERE n = 2;")
	// A statement naming its database: replayed into another database it
	// would change this one.
	srv.exec(t, db, "ALTER TABLE "+db+".ledger ADD COLUMN note INT")
	atB := nextSecond()
	srv.exec(t, db, "INSERT INTO ledger (n, phase) SELECT seq, 'C' FROM seq_21_to_25;")
	j2 := h.mustBackup(arn)
	point := aws.ToString(j2.RecoveryPointArn)
	md := h.restoreMetadata(point)
	if md["PointInTimeRecovery"] != "available" || md["EarliestRestoreTime"] != md1["EarliestRestoreTime"] || md["PointInTimeRecoveryNote"] != "" {
		t.Fatalf("second point's metadata: %v (first %v)", md, md1)
	}
	t.Logf("second point: window %s to %s, %d bytes in %d items", md["EarliestRestoreTime"], md["LatestRestoreTime"],
		h.point(j2).BackupSizeInBytes, h.point(j2).Objects)
	sourceBefore := srv.exec(t, db, "SELECT GROUP_CONCAT(n, phase ORDER BY n) FROM ledger")

	ledger := func(db string) string { return srv.exec(t, db, "SELECT GROUP_CONCAT(n, phase ORDER BY n) FROM ledger") }
	restoreAt := func(target string, at time.Time) *types.RestoreJobStatus {
		md := map[string]string{"TargetDatabase": target}
		if !at.IsZero() {
			md["RestoreTime"] = at.Format(time.RFC3339)
		}
		rj := h.restore(point, md)
		if rj.Status != types.RestoreJobStatusCompleted {
			t.Logf("restore to %v: %s %s", at, rj.Status, aws.ToString(rj.StatusMessage))
		}
		return &rj.Status
	}

	// At A: the first snapshot, then the log up to A.
	if s := restoreAt(db+"_a", atA); *s != types.RestoreJobStatusCompleted {
		t.Fatal("restore at A failed")
	}
	want := "1a,20,3A,4A,5A,6A,7A,8A,9A,10A,11A,12A"
	if got := ledger(db + "_a"); got != want {
		t.Fatalf("restored at A: %s, want %s", got, want)
	}
	// The snapshot of the second point, with nothing replayed.
	if s := restoreAt(db+"_now", time.Time{}); *s != types.RestoreJobStatusCompleted {
		t.Fatal("restore of the snapshot failed")
	}
	if got := ledger(db + "_now"); got != sourceBefore {
		t.Fatalf("restored snapshot: %s, want %s", got, sourceBefore)
	}
	// At B the log holds the ALTER naming the source: the replay stops
	// before it, the job fails, and the database it made is dropped.
	rj := h.restore(point, map[string]string{"TargetDatabase": db + "_b", "RestoreTime": atB.Format(time.RFC3339)})
	if rj.Status != types.RestoreJobStatusFailed || !strings.Contains(aws.ToString(rj.StatusMessage), "names the source database") {
		t.Fatalf("restore at B: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if n := srv.int(t, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+db+"_b'"); n != 0 {
		t.Fatal("the failed restore left its database")
	}
	// Nothing of the source or the other database changed.
	if got := ledger(db); got != sourceBefore {
		t.Fatalf("source changed by the restores: %s, want %s", got, sourceBefore)
	}
	if got := ledger(other); got != "100X" {
		t.Fatalf("other database: %s", got)
	}
	if n := srv.int(t, "", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+db+"_a' AND TABLE_NAME = 'ledger'"); n != 1 {
		t.Fatal("restored at A lacks its table")
	}
	// Outside the window.
	for _, at := range []time.Time{time.Now().Add(time.Hour), time.Unix(0, 0)} {
		_, err := h.startRestore(point, map[string]string{"TargetDatabase": db + "_x", "RestoreTime": at.UTC().Format(time.RFC3339)})
		wantRefused(t, err, "InvalidParameterValueException", "outside the recovery point's window")
	}
}
