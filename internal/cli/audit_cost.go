package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/audit"
)

// auditCost prints what each resource's protection costs a month, and what
// replication alone, backup alone or both would cost and leave open.
func (m *Main) auditCost(ctx context.Context, args []string) error {
	fs := m.flags("audit cost")
	af := m.addAdminFlags(fs)
	account := fs.String("account", "", "the account to price (the admin only; default the caller's)")
	prices := fs.String("prices", "", "a JSON price table to price with instead of the deployment's (see docs/design/cost-model.md)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var body []byte
	method := http.MethodGet
	if *prices != "" {
		// Checked here, so a mistake is told before any call; the server
		// applies the file's prices over the deployment's.
		raw, err := os.ReadFile(*prices)
		if err != nil {
			return err
		}
		if _, err := audit.ReadPrices(bytes.NewReader(raw), audit.DefaultPrices); err != nil {
			return fmt.Errorf("%s: %w", *prices, err)
		}
		body, method = raw, http.MethodPost
	}
	c, err := af.client(m, adminapi.CostPath)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *account != "" {
		q.Set("account", *account)
	}
	var rep audit.CostReport
	raw, err := c.call(ctx, method, "", q, body, &rep)
	if err != nil {
		return err
	}
	if *af.json {
		return m.writeRaw(raw)
	}
	printCost(m.Stdout, &rep)
	return nil
}

// money prints an amount with cents, or with four decimals when it is
// less than a cent but not nothing.
func money(p audit.Prices, v float64) string {
	sym := "$"
	if p.Currency != "" && p.Currency != "USD" {
		sym = p.Currency + " "
	}
	if v > 0 && v < 0.01 {
		return fmt.Sprintf("%s%.4f", sym, v)
	}
	return fmt.Sprintf("%s%.2f", sym, v)
}

func gb(bytes int64) string { return fmt.Sprintf("%.2f GB", float64(bytes)/audit.GB) }

// requests says how many replication requests were counted over how long,
// and the month they make at that rate: a rate measured over minutes
// says little of a month.
func requests(u audit.Usage, perMonth float64, at time.Time) string {
	if u.ReplicationRequests == 0 || u.RequestsSince.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%d in %s (%.0f)", u.ReplicationRequests, at.Sub(u.RequestsSince).Round(time.Minute), perMonth)
}

func threatList(ts []audit.Threat) string {
	if len(ts) == 0 {
		return "nothing"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func printCost(w io.Writer, rep *audit.CostReport) {
	p := rep.Prices
	price := func(v float64) string {
		return strings.TrimSuffix(money(p, 1), "1.00") + strconv.FormatFloat(v, 'f', -1, 64)
	}
	fmt.Fprintf(w, "Prices (%s): replication %s per 1,000 requests, replica storage %s per GB-month, backup %s per GB-month warm and %s cold.\n\n",
		p.Currency, price(p.ReplicationPer1000Requests), price(p.ReplicaStoragePerGBMonth), price(p.BackupWarmPerGBMonth), price(p.BackupColdPerGBMonth))
	if len(rep.Resources) == 0 {
		fmt.Fprintln(w, "No resources.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tTYPE\tPER MONTH\tREPLICATION\tBACKUP\tREQUESTS (A MONTH AT THAT RATE)\tREPLICAS\tWARM\tCOLD\tDEDUP SAVED")
	for _, r := range rep.Resources {
		u := r.Usage
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s (%s)\n", u.ARN, u.Type,
			money(p, r.Configured.Total), money(p, r.Configured.Replication), money(p, r.Configured.Backup),
			requests(u, r.RequestsPerMonth, rep.At), gb(u.ReplicaBytes), gb(u.WarmBytes), gb(u.ColdBytes), gb(r.DedupSavedBytes), money(p, r.DedupSaved))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nConfigured, all resources: %s a month.\n\nWhat if (per month; * priced from the resource's size, not measured):\n", money(p, rep.Total))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tOPTION\tPER MONTH\tPROTECTS AGAINST\tLEAVES OPEN")
	for _, r := range rep.Resources {
		for _, c := range append([]audit.Cost{r.Configured}, r.WhatIf...) {
			cost := money(p, c.Total)
			if c.Estimated {
				cost += "*"
			}
			if !c.Available {
				cost = "n/a"
			}
			open := threatList(c.LeavesOut)
			if c.Note != "" && !c.Available {
				open = c.Note
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Usage.ARN, c.Option, cost, threatList(c.Protects), open)
		}
	}
	tw.Flush()
}
