package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
)

func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	region := fs.String("region", "us-east-1", "region this process serves")
	rf := addRunFlags(fs)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	cert := fs.String("tls-cert", "", "PEM certificate file: serve HTTPS")
	key := fs.String("tls-key", "", "PEM private key file for -tls-cert")
	log, creds, err := m.prepare(ctx, fs, rf, args, func() error {
		if (*cert == "") != (*key == "") {
			return errors.New("-tls-cert and -tls-key go together")
		}
		return nil
	})
	if err != nil {
		return err
	}
	cfg := server.Config{
		Region: *region, DataDir: *rf.data, Listen: *listen, TLSCert: *cert, TLSKey: *key,
		Keys: []iam.Key{creds.key()}, Logger: log, UploadExpiry: *rf.uploadExpiry,
	}
	return m.runRegions(ctx, []server.Config{cfg}, func(urls map[string]string) {
		fmt.Fprintf(m.Stdout, "%s  %s\n", *region, urls[*region])
	})
}

// runRegions opens and starts every region, calls ready, then serves until
// ctx ends and shuts down gracefully.
func (m *Main) runRegions(ctx context.Context, cfgs []server.Config, ready func(map[string]string)) error {
	var regions []*server.Region
	closeAll := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for _, r := range regions {
			errs = append(errs, r.Close(sctx))
		}
		return errors.Join(errs...)
	}
	urls := map[string]string{}
	for _, cfg := range cfgs {
		r, err := server.Open(ctx, cfg)
		if err != nil {
			return errors.Join(err, closeAll())
		}
		regions = append(regions, r)
		if err := r.Start(); err != nil {
			return errors.Join(err, closeAll())
		}
		urls[cfg.Region] = r.URL()
	}
	ready(urls)
	if m.Ready != nil {
		m.Ready(urls)
	}
	<-ctx.Done()
	fmt.Fprintln(m.Stderr, "shutting down: finishing requests in flight")
	return closeAll()
}
