package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/bench"
)

func (m *Main) bench(ctx context.Context, args []string) error {
	fs := m.flags("bench")
	cfg := bench.Config{}
	fs.StringVar(&cfg.Endpoint, "endpoint", "http://127.0.0.1:9000", "S3 endpoint URL")
	fs.StringVar(&cfg.Region, "region", bench.DefaultRegion, "region to sign for")
	fs.StringVar(&cfg.AccessKey, "access-key", m.Getenv("AWS_ACCESS_KEY_ID"), "access key (default $AWS_ACCESS_KEY_ID)")
	fs.StringVar(&cfg.SecretKey, "secret-key", m.Getenv("AWS_SECRET_ACCESS_KEY"), "secret key (default $AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&cfg.Bucket, "bucket", "bench", "bucket to write to (created if missing)")
	fs.StringVar(&cfg.Prefix, "prefix", "", "key prefix (default bench/<time>/)")
	size := fs.String("size", "4KiB", "object size, e.g. 4KiB, 16MiB")
	partSize := fs.String("part-size", "", "multipart mode: upload each object in parts of this size and download it in ranges, -concurrency at a time")
	fs.IntVar(&cfg.Count, "count", 1000, "number of objects")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent requests")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "skip TLS certificate verification")
	fs.StringVar(&cfg.CAFile, "ca-file", m.Getenv("AWS_CA_BUNDLE"), "PEM certificate to trust (default $AWS_CA_BUNDLE)")
	fs.BoolVar(&cfg.Cleanup, "cleanup", true, "delete the objects afterwards")
	fs.BoolVar(&cfg.Checksum, "checksum", false, "let the SDK add its default CRC32 to every PUT")
	baseline := fs.String("baseline", "", "first measure the disk in this directory (put it on the server's disk): a one-writer write+fsync loop of -size for objects under 1 MiB, else a sustained sequential write of 4 GiB; PUT is reported as a ratio to it")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Size, err = bench.ParseSize(*size); err != nil {
		return err
	}
	if *partSize != "" {
		if cfg.PartSize, err = bench.ParseSize(*partSize); err != nil {
			return err
		}
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return fmt.Errorf("no credentials: set -access-key and -secret-key or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	var base float64
	large := cfg.Size >= 1<<20
	if *baseline != "" {
		if large {
			if base, err = bench.SequentialWrite(ctx, *baseline, 4<<30); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "disk baseline: %.0f MiB/s sustained sequential write (4 GiB, fdatasync every 256 MiB)\n", base)
		} else {
			if base, err = bench.DiskBaseline(ctx, *baseline, cfg.Size, 3*time.Second); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "disk baseline: %.0f writes+fsyncs/s of %s, one writer\n", base, *size)
		}
	}
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		res.Print(m.Stdout)
		switch {
		case base > 0 && large:
			fmt.Fprintf(m.Stdout, "PUT = %.2fx the disk baseline\n", res.Put.MiBPerSec/base)
		case base > 0 && res.Put.OpsPerSec > 0:
			fmt.Fprintf(m.Stdout, "PUT = %.2fx the disk baseline\n", res.Put.OpsPerSec/base)
		}
	}
	return err
}
