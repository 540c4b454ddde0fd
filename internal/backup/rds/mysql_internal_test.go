package rds

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/backup"
)

func TestOptionValue(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        `"plain"`,
		`p"a\s s#w'd;`: `"p\"a\\s s#w'd;"`,
		"new\nline":    `"new\nline"`,
	} {
		if got := optionValue(in); got != want {
			t.Errorf("optionValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDumpTail(t *testing.T) {
	dump := "/*M!999999\\- enable the sandbox mode */ \n-- CHANGE MASTER TO MASTER_LOG_FILE='b.000001', MASTER_LOG_POS=4;\n" +
		"INSERT INTO t VALUES ('-- Dump completed');\n-- SET GLOBAL gtid_slave_pos='0-7-7';\n/*!40101 SET x */;\n\n-- Dump completed\n"
	for _, cut := range []int{len(dump), len(dump) - 3, strings.Index(dump, "/*!40101")} {
		d := &dumpTail{}
		// Written in small pieces, as a pipe gives them.
		for i := 0; i < cut; i += 7 {
			d.Write([]byte(dump[i:min(i+7, cut)]))
		}
		if complete := cut == len(dump); d.completed != complete {
			t.Errorf("cut at %d: completed %v", cut, d.completed)
		}
		if cut > strings.Index(dump, "/*!40101") && d.gtid != "0-7-7" {
			t.Errorf("gtid %q", d.gtid)
		}
	}
}

func TestBinlogFilter(t *testing.T) {
	in := "# at 4\n/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;\n/*M!100001 SET @@session.server_id=7*//*!*/;\n" +
		"/*M!100001 SET @@session.gtid_seq_no=8*//*!*/;\nSTART TRANSACTION\n/*!*/;\n#Q> UPDATE shop.acct SET x = 1\n" +
		"BINLOG '\nc2hvcC5hY2N0Cg==\n'/*!*/;\nCOMMIT/*!*/;\nuse `shop2`/*!*/;\nCREATE TABLE shopping.t (x INT)\n/*!*/;\n"
	out, err := io.ReadAll(newBinlogFilter(strings.NewReader(in), "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "gtid_seq_no") || strings.Contains(string(out), "server_id") || !strings.Contains(string(out), "c2hvcC5hY2N0Cg==") ||
		!strings.Contains(string(out), "CREATE TABLE shopping.t") {
		t.Fatalf("filtered:\n%s", out)
	}
	for _, stmt := range []string{"ALTER TABLE shop.acct ADD y INT", "DROP TABLE `shop`.acct", "RENAME TABLE a TO SHOP . b"} {
		_, err := io.ReadAll(newBinlogFilter(strings.NewReader(in+stmt+"\n/*!*/;\n"), "shop"))
		var be *backup.Error
		if !errors.As(err, &be) || !strings.Contains(be.Message, "names the source database") {
			t.Errorf("%s: %v", stmt, err)
		}
	}
}

func TestRestoredInstanceName(t *testing.T) {
	for base, want := range map[string]string{
		"app-restored": "app-restored", "shop_restored": "shop-restored", "9 lives": "db-9-lives",
		"__x__": "x", "": "db", strings.Repeat("a", 80): strings.Repeat("a", 63), "ünïcode": "n-code",
	} {
		got, err := restoredInstanceName(nil, base)
		if err != nil || got != want || !backup.ValidRDSName(got) {
			t.Errorf("restoredInstanceName(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
	if _, err := restoredInstanceName(map[string]string{metaInstanceID: "-x"}, "a"); err == nil {
		t.Error("an invalid DBInstanceIdentifier was taken")
	}
}

func TestBinlogOrder(t *testing.T) {
	if !binlogAfter("binlog.000010", "binlog.000009") || binlogAfter("binlog.000009", "binlog.000010") || binlogAfter("b.000001", "b.000001") {
		t.Error("binlogAfter")
	}
	sid, file, pos, ok := parseVersionID("7:binlog.000002:1712")
	if !ok || sid != "7" || file != "binlog.000002" || pos != 1712 {
		t.Errorf("parseVersionID: %s %s %d %v", sid, file, pos, ok)
	}
	if _, _, _, ok := parseVersionID(""); ok {
		t.Error("parseVersionID of nothing")
	}
}
