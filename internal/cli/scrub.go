package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulwark/bulwark/internal/scrub"
)

const scrubUsage = `Usage: bulwark scrub [flags]

Reads back every stored object version of the region at -endpoint, checks
it against the MD5 recorded when it was written, marks what is damaged so
that it is never served, and repairs it from a replica in another region
(or, with -repair-from-backup, from the newest recovery point that holds
it). Waits for the pass and prints its progress and findings; exits 1 when
damage is left unrepaired. The deployment's admin account only.
`

// scrubAPIPath is where the server serves the scrub admin API.
const scrubAPIPath = "/_bulwark/v1/scrub"

// scrubStatus is the answer of the scrub API.
type scrubStatus struct {
	Region string `json:"region"`
	scrub.Status
}

// errDamageLeft makes the exit code 1 when a pass left damage unrepaired.
var errDamageLeft = errors.New("damaged versions left unrepaired")

func (m *Main) scrub(ctx context.Context, args []string) error {
	fs := m.flags("scrub")
	fs.Usage = func() { fmt.Fprint(fs.Output(), scrubUsage); fs.PrintDefaults() }
	af := m.addAdminFlags(fs)
	bucket := fs.String("bucket", "", "scrub only this bucket (homed in the endpoint's region)")
	fromBackup := fs.Bool("repair-from-backup", false, "repair from recovery points what no replica holds")
	status := fs.Bool("status", false, "show the current or last pass instead of starting one")
	noWait := fs.Bool("no-wait", false, "start the pass and return")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := af.client(m, scrubAPIPath)
	if err != nil {
		return err
	}
	var st scrubStatus
	if *status {
		raw, err := c.call(ctx, http.MethodGet, "", nil, nil, &st)
		if err != nil {
			return err
		}
		if *af.json {
			return m.writeRaw(raw)
		}
		for _, p := range []*scrub.Pass{st.Current, st.Last} {
			if p != nil {
				printPass(m.Stdout, st.Region, p)
				break
			}
		}
		if st.Current == nil && st.Last == nil {
			fmt.Fprintf(m.Stdout, "region %s: no scrub pass yet\n", st.Region)
		}
		return nil
	}
	body, _ := json.Marshal(map[string]any{"bucket": *bucket, "repairFromBackup": *fromBackup})
	if _, err := c.call(ctx, http.MethodPost, "", nil, body, &st); err != nil {
		return err
	}
	id := st.Current.ID
	fmt.Fprintf(m.Stderr, "region %s: scrub pass %s started\n", st.Region, id)
	if *noWait {
		return nil
	}
	for last := time.Now(); ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		raw, err := c.call(ctx, http.MethodGet, "", nil, nil, &st)
		if err != nil {
			return err
		}
		p := st.Current
		if p == nil || p.ID != id {
			return fmt.Errorf("scrub pass %s is no longer known to region %s (restarted?)", id, st.Region)
		}
		if p.State != scrub.Running {
			if *af.json {
				return m.writeRaw(raw)
			}
			printPass(m.Stdout, st.Region, p)
			if p.Damaged > p.Repaired {
				return errDamageLeft
			}
			if p.State != scrub.Completed {
				return fmt.Errorf("scrub pass %s %s: %s", id, p.State, p.Error)
			}
			return nil
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(m.Stderr, "  %d versions, %s checked; %d damaged, %d repaired\n", p.Versions, sizeText(p.Bytes), p.Damaged, p.Repaired)
		}
	}
}

func printPass(w io.Writer, region string, p *scrub.Pass) {
	end := "running"
	if !p.Finished.IsZero() {
		end = p.Finished.Sub(p.Started).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "region %s  pass %s  %s (%s)\n", region, p.ID, p.State, end)
	fmt.Fprintf(w, "checked %d buckets, %d versions, %s; damaged %d, repaired %d\n", p.Buckets, p.Versions, sizeText(p.Bytes), p.Damaged, p.Repaired)
	if p.Error != "" {
		fmt.Fprintf(w, "error: %s\n", p.Error)
	}
	for _, f := range p.Findings {
		outcome := "repaired from " + f.RepairedFrom
		if !f.Repaired {
			outcome = "NOT REPAIRED: " + f.Unrepaired
		}
		fmt.Fprintf(w, "  %s/%s %s: %s (%s); %s\n", f.Bucket, f.Key, f.VersionID, f.Kind, f.Why, outcome)
	}
}

// sizeText writes a byte count in binary units.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
