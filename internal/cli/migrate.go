package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"text/tabwriter"
	"time"

	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/meta/pg"
	"github.com/bulwark/bulwark/internal/server"
)

const migrateUsage = `Usage: bulwark migrate -data DIR -region R -to postgres://user@host/db [flags]

Copies a stopped region's metadata from bbolt (DIR/meta.db, or DIR/R/meta.db
as bulwark up lays regions out) into an empty PostgreSQL database, keyspace
by keyspace in batches of transactions, sequences included, then marks
meta.db as moved so that the region no longer starts on it. Start the
region again with the same -data and with -meta (or BULWARK_META_DSN) set to
the database: blobs, the deployment key and the vaults stay in the data
directory.

An interrupted copy leaves a progress record in the database, which the
region refuses to start on; run the same command again to continue it.

-verify compares meta.db and the database key by key instead of copying,
prints the keys and sequences of each keyspace and every difference, and
exits 1 when there is one.

-shared DIR also copies what every gateway of a region shares into DIR, a
mount they all reach: the blobs (or into -blobs LOCATION, a directory or
s3://bucket/prefix?endpoint=URL&region=NAME), the backup vaults and the
deployment key; start each gateway with -meta, -shared DIR (and -blobs) and
a -data of its own. With -verify, the blobs are compared too.

-to defaults to BULWARK_META_DSN, which keeps a password out of ps.
`

// maxShownDiffs bounds the differences -verify prints; all are counted.
const maxShownDiffs = 50

func (m *Main) migrate(ctx context.Context, args []string) error {
	fs := m.flags("migrate")
	fs.Usage = func() { fmt.Fprint(fs.Output(), migrateUsage); fs.PrintDefaults() }
	data := fs.String("data", "./bulwark-data", "the region's data directory")
	region := fs.String("region", "", "the region whose metadata moves")
	to := fs.String("to", "", "PostgreSQL database to copy the metadata into (default BULWARK_META_DSN)")
	verify := fs.Bool("verify", false, "compare the two stores instead of copying; exit 1 on a difference")
	force := fs.Bool("force", false, "copy into a database that already holds keys (keys of both take meta.db's value)")
	revert := fs.Bool("revert", false, "remove meta.db's moved mark, so that the region starts on bbolt again (the database is left as it is)")
	batch := fs.Int("batch", 1000, "keys per transaction of the copy")
	var sm sharedMove
	fs.StringVar(&sm.dir, "shared", "", "also copy the blobs, vaults and deployment key into this directory every gateway shares")
	fs.StringVar(&sm.blobs, "blobs", "", "with -shared, copy the blobs here instead: a directory or s3://bucket/prefix?endpoint=URL&region=NAME")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *region == "" {
		fmt.Fprintln(fs.Output(), "-region is required")
		return errUsage
	}
	if *to == "" {
		*to = m.Getenv("BULWARK_META_DSN")
	}
	if *to == "" && !*revert {
		fmt.Fprintln(fs.Output(), "-to (or BULWARK_META_DSN) is required")
		return errUsage
	}
	path, err := metaFile(*data, *region)
	if err != nil {
		return err
	}
	src, err := bolt.Open(path)
	if err != nil {
		return fmt.Errorf("%w (is the region still running? stop it first)", err)
	}
	defer src.Close()
	if *revert {
		if err := meta.Unmark(ctx, src); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "region %s: %s is the region's metadata again; start it without -meta\n", *region, path)
		return nil
	}
	dst, err := pg.Open(ctx, *to)
	if err != nil {
		return err
	}
	defer dst.Close()
	if sm.blobs != "" && sm.dir == "" {
		fmt.Fprintln(fs.Output(), "-blobs goes with -shared")
		return errUsage
	}
	if *verify {
		err := m.verifyMigration(ctx, dst, src)
		if sm.dir != "" {
			err = errors.Join(err, m.verifyShared(ctx, filepath.Dir(path), sm))
		}
		return err
	}
	if err := m.copyMetadata(ctx, dst, src, path, *region, redactDSN(*to), *force, *batch); err != nil {
		return err
	}
	if sm.dir == "" {
		return nil
	}
	return m.moveShared(ctx, filepath.Dir(path), sm)
}

// verifyShared compares the region's blobs with the shared copy.
func (m *Main) verifyShared(ctx context.Context, data string, sm sharedMove) error {
	src, err := blobfs.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return err
	}
	dst, err := server.OpenBlobLocation(ctx, sm.blobLocation())
	if err != nil {
		return err
	}
	bad, err := verifyBlobs(ctx, dst, src, func(d string) { fmt.Fprintln(m.Stdout, "DIFF", d) })
	if err != nil {
		return err
	}
	if bad > 0 {
		fmt.Fprintf(m.Stdout, "%d blobs differ at %s\n", bad, sm.blobLocation())
		return exitCode(1)
	}
	fmt.Fprintf(m.Stdout, "every blob is at %s\n", sm.blobLocation())
	return nil
}

// metaFile finds the region's bbolt file: in the data directory as serve
// lays it out, or in its region's directory as up does.
func metaFile(data, region string) (string, error) {
	for _, p := range []string{filepath.Join(data, "meta.db"), filepath.Join(data, region, "meta.db")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no meta.db in %s or %s: is -data the region's data directory?", data, filepath.Join(data, region))
}

func (m *Main) copyMetadata(ctx context.Context, dst, src meta.Dumper, path, region, to string, force bool, batch int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if dest, at, err := meta.Moved(ctx, src); err != nil {
		return err
	} else if dest != "" && !force {
		return fmt.Errorf("%s was already moved to %s on %s; -force copies it again", path, dest, at.Format(time.RFC3339))
	}
	start := time.Now()
	last := start
	st, err := meta.Copy(ctx, dst, src, meta.CopyOptions{
		Source: "region " + region + " " + abs, Force: force, BatchKeys: batch,
		Progress: func(space string, keys int64) {
			if time.Since(last) >= 5*time.Second {
				last = time.Now()
				fmt.Fprintf(m.Stderr, "%s: %d keys\n", space, keys)
			}
		},
	})
	if errors.Is(err, meta.ErrNotEmpty) {
		return fmt.Errorf("%w; -force copies into it anyway", err)
	}
	if err != nil {
		return fmt.Errorf("%w (run the same command again to continue the copy)", err)
	}
	if err := meta.MarkMoved(ctx, src, to); err != nil {
		return err
	}
	how := "copied"
	if st.Resumed {
		how = "finished copying"
	}
	fmt.Fprintf(m.Stdout, "region %s: %s %d keys (%s) of %d keyspaces to %s in %s\n",
		region, how, st.Keys, bytesize(st.Bytes), st.Spaces, to, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(m.Stdout, "%s is marked as moved; start the region with -meta %s (bulwark migrate -verify compares the two)\n", path, to)
	return nil
}

func (m *Main) verifyMigration(ctx context.Context, dst, src meta.Dumper) error {
	shown, total := 0, 0
	counts, err := meta.Compare(ctx, src, dst, func(d meta.Difference) {
		total++
		if shown++; shown > maxShownDiffs {
			return
		}
		if d.Key == nil {
			fmt.Fprintf(m.Stdout, "DIFF %s: %s\n", d.Space, d.What)
			return
		}
		fmt.Fprintf(m.Stdout, "DIFF %s %s: %s\n", d.Space, strconv.Quote(string(d.Key)), d.What)
	})
	if err != nil {
		return err
	}
	if total > maxShownDiffs {
		fmt.Fprintf(m.Stdout, "... and %d more differences\n", total-maxShownDiffs)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "keyspace\tbbolt keys\tPostgreSQL keys\tbbolt seq\tPostgreSQL seq\t\t")
	for _, c := range counts {
		state := "same"
		if c.Differs() {
			state = "DIFFERS"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t\n", c.Space, c.SourceKeys, c.TargetKeys, c.SourceSeq, c.TargetSeq, state)
	}
	w.Flush()
	from, err := meta.Migrating(ctx, dst)
	if err != nil {
		return err
	}
	if from != "" {
		total++
		fmt.Fprintf(m.Stdout, "DIFF the database holds an unfinished copy of %s\n", from)
	}
	if total > 0 {
		fmt.Fprintf(m.Stdout, "%d differences\n", total)
		return exitCode(1)
	}
	fmt.Fprintln(m.Stdout, "no difference")
	return nil
}

// redactDSN hides the password of a DSN, in either form, for what is
// printed and recorded.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Redacted()
	}
	return passwordRE.ReplaceAllString(dsn, "password=xxxxx")
}

var passwordRE = regexp.MustCompile(`password=('(\\.|[^'])*'|\S+)`)
