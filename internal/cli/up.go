package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
)

// upRegion is the region the embedded default deployment serves.
const upRegion = "us-west-2"

func (m *Main) up(ctx context.Context, args []string) error {
	fs := m.flags("up")
	rf := addRunFlags(fs)
	data := rf.data
	listen := fs.String("listen", "127.0.0.1:9000", "address of the first region's endpoint")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a self-signed certificate kept in the data directory")
	log, creds, err := m.prepare(ctx, fs, rf, args, nil)
	if err != nil {
		return err
	}
	cfg := server.Config{
		Region: upRegion, DataDir: filepath.Join(*data, upRegion), Listen: *listen,
		Keys: []iam.Key{creds.key()}, Logger: log, UploadExpiry: *rf.uploadExpiry,
	}
	if *useTLS {
		cfg.TLSCert, cfg.TLSKey, err = server.SelfSignedCert(filepath.Join(*data, "tls"))
		if err != nil {
			return err
		}
	}
	return m.runRegions(ctx, []server.Config{cfg}, func(urls map[string]string) {
		w := m.Stdout
		url := urls[upRegion]
		fmt.Fprintf(w, "Bulwark is up.\n\n")
		fmt.Fprintf(w, "  region     endpoint\n  %-10s %s\n\n", upRegion, url)
		fmt.Fprintf(w, "  account    %s\n  access key %s\n  secret key %s\n  (from %s)\n\n", creds.AccountID, creds.AccessKey, creds.SecretKey, creds.Source)
		fmt.Fprintf(w, "Use it with the aws CLI:\n\n")
		fmt.Fprintf(w, "  export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s\n", creds.AccessKey, creds.SecretKey, upRegion)
		if *useTLS {
			fmt.Fprintf(w, "  export AWS_CA_BUNDLE=%s   # trust the self-signed certificate\n", cfg.TLSCert)
		}
		fmt.Fprintf(w, "  aws --endpoint-url %s s3 mb s3://my-bucket\n\n", url)
		fmt.Fprintf(w, "Metrics: %s/metrics    Stop: Ctrl-C\n", url)
	})
}
