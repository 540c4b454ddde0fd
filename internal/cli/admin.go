package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"
)

const adminUsage = `Usage: bulwark admin account <command> [flags]

Commands:
  account create NAME   create an account; prints its ID and its root user's
                        access key, whose secret is shown this once
  account list          list the accounts

Only the deployment's admin may call them: the root user of the account
bulwark up made (or of BULWARK_ACCESS_KEY's). They call the admin API of the
region at -endpoint, signed like S3 calls, with AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, else BULWARK_ACCESS_KEY / BULWARK_SECRET_KEY.
Run "bulwark admin account <command> -h" for a command's flags.
`

// accountsAPIPath is where the server serves the accounts admin API.
const accountsAPIPath = "/_bulwark/v1/accounts"

func (m *Main) admin(ctx context.Context, args []string) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(m.Stderr, adminUsage)
		return errUsage
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(m.Stdout, adminUsage)
		return nil
	case args[0] != "account":
		fmt.Fprintf(m.Stderr, "bulwark admin: unknown command %q\n\n%s", args[0], adminUsage)
		return errUsage
	case len(args) == 1:
		fmt.Fprint(m.Stderr, adminUsage)
		return errUsage
	}
	switch args[1] {
	case "create":
		return m.adminAccountCreate(ctx, args[2:])
	case "list":
		return m.adminAccountList(ctx, args[2:])
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, adminUsage)
		return nil
	}
	fmt.Fprintf(m.Stderr, "bulwark admin account: unknown command %q\n\n%s", args[1], adminUsage)
	return errUsage
}

// newAccount is the answer to a create call.
type newAccount struct {
	AccountID       string `json:"accountId"`
	Name            string `json:"name"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

func (m *Main) adminAccountCreate(ctx context.Context, args []string) error {
	fs := m.flags("admin account create")
	af := m.addAdminFlags(fs)
	names, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		fmt.Fprintln(m.Stderr, "usage: bulwark admin account create [flags] NAME")
		return errUsage
	}
	c, err := af.client(m, accountsAPIPath)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"name": names[0]})
	var a newAccount
	raw, err := c.call(ctx, http.MethodPost, "", nil, body, &a)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	w := m.Stdout
	fmt.Fprintf(w, "account    %s (%s)\naccess key %s\nsecret key %s\n\n", a.AccountID, a.Name, a.AccessKeyID, a.SecretAccessKey)
	fmt.Fprintf(w, "This is the only time the secret key is shown: Bulwark keeps it sealed and\n")
	fmt.Fprintf(w, "cannot show it again. Hand these lines to the account's owner:\n\n")
	fmt.Fprintf(w, "  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s\n", a.AccessKeyID, a.SecretAccessKey, *af.region)
	return nil
}

// accountEntry is an account as the list call shows it.
type accountEntry struct {
	AccountID string    `json:"accountId"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Admin     bool      `json:"admin"`
}

func (m *Main) adminAccountList(ctx context.Context, args []string) error {
	fs := m.flags("admin account list")
	af := m.addAdminFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := af.client(m, accountsAPIPath)
	if err != nil {
		return err
	}
	var out struct {
		Accounts []accountEntry `json:"accounts"`
	}
	raw, err := c.call(ctx, http.MethodGet, "", nil, nil, &out)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tNAME\tCREATED")
	for _, a := range out.Accounts {
		name := orDash(a.Name)
		if a.Admin {
			name += " (admin)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.AccountID, name, a.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
