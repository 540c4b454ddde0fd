package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/audit"
)

const auditUsage = `Usage: bulwark audit [flags]
       bulwark audit cost [-prices FILE] [flags]

Answers "are we protected if a region goes down?" for every resource of
the deployment — every bucket, and every database and directory registered
with bulwark resource — against four threats: region-outage,
accidental-deletion, corruption and credential-loss. Each cell says
PROTECTED, AT_RISK (configured but degraded: replication failing or
behind, backups missed, copies never made), UNPROTECTED, or UNKNOWN (what
would protect it is in a region that did not answer), by what, with the
measured RPO (how much would be lost now) and RTO (how long the last
restore took). Flags below the table say where confidence is false.

Required threats (marked *) come from the deployment's policy (topology
file: audit.require; by default region-outage and accidental-deletion),
-require, or a resource's tag bulwark:protect=THREAT,... (or none), which
wins. A bucket that only receives replicas requires nothing unless tagged.

Exit status: 0 when every required cell is PROTECTED; 3 when one is
UNPROTECTED or AT_RISK; 4 when the rest are PROTECTED but some could not
be seen (a region did not answer); 1 on error; 2 on a usage error.

bulwark audit cost prices, per resource, what its protection did and holds
(replication requests and replica storage, backup storage per tier) and
shows what CRR only, backup only or both would cost and leave open; see
docs/design/cost-model.md.
`

// Exit codes of bulwark audit besides 0, 1 and 2.
const (
	ExitUnprotected = 3
	ExitUnknown     = 4
)

// exitCode is an error that ends the command with a given exit status,
// having said all it has to say.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "cost" {
		return m.auditCost(ctx, args[1:])
	}
	fs := m.flags("audit")
	fs.Usage = func() { fmt.Fprint(m.Stderr, auditUsage, "\nFlags:\n"); fs.PrintDefaults() }
	af := m.addAdminFlags(fs)
	account := fs.String("account", "", "audit this account (the deployment's admin sees every account's by default)")
	resource := fs.String("resource", "", "audit this resource ARN only")
	require := fs.String("require", "", "threats every resource must survive, comma-separated, all or none (replaces the deployment's policy)")
	if err := parse(fs, args); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"account": *account, "resource": *resource, "require": *require} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *require != "" {
		if _, err := audit.ParseThreats(*require); err != nil {
			fmt.Fprintln(m.Stderr, err)
			return errUsage
		}
	}
	c, err := af.client(m, adminapi.AuditPath)
	if err != nil {
		return err
	}
	var rep adminapi.AuditReport
	raw, err := c.call(ctx, "GET", "", q, nil, &rep)
	if err != nil {
		return err
	}
	if *af.json {
		err = m.writeRaw(raw)
	} else {
		err = printAudit(m.Stdout, &rep)
	}
	if err != nil {
		return err
	}
	switch rep.Verdict {
	case audit.Protected:
		return nil
	case audit.Unknown:
		return exitCode(ExitUnknown)
	default:
		return exitCode(ExitUnprotected)
	}
}

// printAudit prints the matrix: a row per resource and a column per
// threat (status, then RPO and RTO), then each resource's detail and
// flags, the regions that did not answer, and the verdict.
func printAudit(w io.Writer, rep *audit.Report) error {
	fmt.Fprintf(w, "Protection audit at %s\n\n", rep.GeneratedAt.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "RESOURCE\tTYPE\tHOME"
	for _, t := range audit.Threats {
		head += "\t" + strings.ToUpper(string(t))
	}
	fmt.Fprintln(tw, head)
	for _, r := range rep.Rows {
		status, rp := r.Name+"\t"+r.Type+"\t"+r.Region, "\t\t"
		if r.Name == "" {
			status = r.ARN + "\t" + r.Type + "\t" + r.Region
		}
		for _, c := range r.Cells {
			mark := ""
			if c.Required {
				mark = "*"
			}
			status += "\t" + string(c.Status) + mark
			rp += "\t" + objectives(c)
		}
		fmt.Fprintln(tw, status)
		fmt.Fprintln(tw, rp)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\n* required. RPO: what would be lost now; RTO: how long the last restore took (0: a replica is read at once).")
	for _, r := range rep.Rows {
		printRowDetail(w, r)
	}
	for _, f := range rep.Flags {
		fmt.Fprintf(w, "\n! %s: %s\n", f.Code, f.Message)
	}
	for _, s := range rep.Regions {
		if !s.Reached {
			fmt.Fprintf(w, "\nRegion %s did not answer (%s).\n  The audit cannot see %s.\n", s.Region, s.Error, s.CannotSee)
		}
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", verdictSentence(rep))
	return nil
}

func objectives(c audit.Cell) string {
	if c.RPO == nil && c.RTO == nil {
		return "-"
	}
	s := "rpo " + shortDuration(c.RPO) + " rto " + shortDuration(c.RTO)
	return s
}

func shortDuration(d *audit.Duration) string {
	if d == nil {
		return "?"
	}
	v := time.Duration(*d)
	switch {
	case v >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(v/(24*time.Hour)))
	case v >= time.Minute:
		return v.Round(time.Minute).String()
	case v >= time.Second:
		return v.Round(time.Second).String()
	default:
		return v.Round(time.Millisecond).String()
	}
}

func printRowDetail(w io.Writer, r audit.Row) {
	req := "nothing"
	if len(r.Required) > 0 {
		var ts []string
		for _, t := range r.Required {
			ts = append(ts, string(t))
		}
		req = strings.Join(ts, ", ")
	}
	fmt.Fprintf(w, "\n%s (%s, account %s) must survive %s (%s)", r.Name, r.ARN, r.Account, req, r.RequiredBy)
	if len(r.ReplicaOf) > 0 {
		fmt.Fprintf(w, "; replica of %s", strings.Join(r.ReplicaOf, ", "))
	}
	fmt.Fprintln(w)
	for _, c := range r.Cells {
		by := ""
		if len(c.By) > 0 {
			by = " by " + strings.Join(c.By, "; ")
		}
		fmt.Fprintf(w, "  %-20s %s%s\n", c.Threat, c.Status, by)
		if c.Note != "" {
			fmt.Fprintf(w, "  %-20s   %s\n", "", c.Note)
		}
	}
	for _, f := range r.Flags {
		fmt.Fprintf(w, "  ! %s: %s\n", f.Code, f.Message)
	}
}

func verdictSentence(rep *audit.Report) string {
	n := 0
	for _, r := range rep.Rows {
		for _, c := range r.Cells {
			if c.Required && c.Status != audit.Protected {
				n++
			}
		}
	}
	switch rep.Verdict {
	case audit.Protected:
		return "PROTECTED: every required threat is covered."
	case audit.Unknown:
		return fmt.Sprintf("UNKNOWN: %d required cells could not be seen (exit %d).", n, ExitUnknown)
	default:
		return fmt.Sprintf("AT_RISK: %d required cells are not PROTECTED (exit %d).", n, ExitUnprotected)
	}
}
