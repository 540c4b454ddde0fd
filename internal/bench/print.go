package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Print writes the result as a small right-aligned table, one row per
// phase, followed by the first error of any phase that had some.
func (r *Result) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tobjects\tconcurrency\tsize\tops/s\tMiB/s\tp50\tp90\tp99\terrors\t")
	for _, p := range []*PhaseResult{&r.Put, &r.Get} {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%.2f\t%s\t%s\t%s\t%d\t\n",
			p.Op, p.Count, r.Concurrency, formatSize(r.Size), p.OpsPerSec, p.MiBPerSec,
			formatLatency(p.P50), formatLatency(p.P90), formatLatency(p.P99), p.Errors)
	}
	tw.Flush()
	for _, p := range []*PhaseResult{&r.Put, &r.Get} {
		if p.FirstError != nil {
			fmt.Fprintf(w, "%s: %d errors, first: %v\n", p.Op, p.Errors, p.FirstError)
		}
	}
}

// formatLatency prints every latency in milliseconds so that a column can
// be compared at a glance without reading units.
func formatLatency(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
