package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/topology"
)

func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.flags("serve")
	region := fs.String("region", "us-east-1", "region this process serves")
	config := fs.String("config", "", "topology file naming every region and its endpoint (YAML); without it the region runs alone")
	rf := addRunFlags(fs)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on; with -config, the host:port of the region's endpoint")
	cert := fs.String("tls-cert", "", "PEM certificate file: serve HTTPS")
	key := fs.String("tls-key", "", "PEM private key file for -tls-cert")
	metaDSN := fs.String("meta", "", "PostgreSQL database for the region's metadata (postgres://user@host/db), shared by every gateway serving the region; default BULWARK_META_DSN, else bbolt in the data directory")
	blobs := fs.String("blobs", "", "where object data lives: a directory (a shared mount for several gateways) or s3://bucket/prefix?endpoint=URL&region=NAME, signed with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; default SHARED/blobs")
	shared := fs.String("shared", "", "directory every gateway of the region shares (blobs unless -blobs says otherwise, vaults, the deployment key), such as an NFS mount; default the data directory")
	var topo *topology.Topology
	log, creds, err := m.prepare(ctx, fs, rf, args, func() error {
		if (*cert == "") != (*key == "") {
			return errors.New("-tls-cert and -tls-key go together")
		}
		if *config == "" {
			return nil
		}
		var err error
		if topo, err = topology.Load(*config); err != nil {
			return err
		}
		endpoint, ok := topo.Endpoint(*region)
		if !ok {
			return fmt.Errorf("region %q is not in %s (it names %s)", *region, *config, strings.Join(topo.Names(), ", "))
		}
		if !flagSet(fs, "listen") {
			*listen, err = topology.ListenAddress(endpoint)
		}
		return err
	})
	if err != nil {
		return err
	}
	if topo != nil && topo.Names()[0] != *region && creds.origin != fromEnv {
		// Its own key would be unknown to the home region, whose IAM it
		// copies with it, and lost at the first copy.
		return fmt.Errorf("region %s copies IAM from region %s, the first of %s: set BULWARK_ACCESS_KEY and BULWARK_SECRET_KEY (and BULWARK_ACCOUNT_ID) to the key every region of the deployment runs with",
			*region, topo.Names()[0], *config)
	}
	keyDir := *rf.data
	if *shared != "" {
		keyDir = *shared
	}
	dkey, err := m.deploymentKey(keyDir)
	if err != nil {
		return err
	}
	metricsToken, _, err := rf.metricsToken()
	if err != nil {
		return err
	}
	if *metaDSN == "" {
		*metaDSN = os.Getenv("BULWARK_META_DSN") // keeps a password out of ps
	}
	keys, bootstrap := creds.serverKeys()
	cfg := server.Config{
		MetricsToken: metricsToken, MetricsPublic: *rf.metricsPublic,
		DeploymentKey: dkey,
		Region:        *region, DataDir: *rf.data, Listen: *listen, TLSCert: *cert, TLSKey: *key,
		MetaDSN: *metaDSN, BlobURL: *blobs, SharedDir: *shared,
		Keys: keys, BootstrapKeys: bootstrap, Logger: log, UploadExpiry: *rf.uploadExpiry, Replication: rf.replication(), Clients: rf.clients(), Disk: *rf.disk, Topology: topo,
	}
	if err := rf.configure(&cfg); err != nil {
		return err
	}
	return m.runRegions(ctx, []server.Config{cfg}, func(urls map[string]string) error {
		if err := creds.save(log); err != nil {
			return err
		}
		w := m.Stdout
		fmt.Fprintf(w, "%s  %s\n", *region, urls[*region])
		if topo != nil {
			for _, r := range topo.Regions() {
				if r.Name != *region {
					fmt.Fprintf(w, "  peer %s  %s\n", r.Name, r.Endpoint)
				}
			}
		}
		fmt.Fprintln(w)
		printKey(w, creds)
		fmt.Fprintf(w, "  %s\n", exportLine(creds, *region))
		return nil
	})
}

// flagSet reports whether the command line set the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runRegions opens and starts every region, calls ready, then serves until
// ctx ends and shuts down gracefully. An error of ready shuts down at once.
func (m *Main) runRegions(ctx context.Context, cfgs []server.Config, ready func(map[string]string) error) error {
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
		if len(regions) > 0 && cfg.IAM == nil {
			// Regions of one process share the deployment's IAM.
			cfg.IAM = regions[0].IAM
		}
		r, err := server.Open(ctx, cfg)
		if err != nil {
			return errors.Join(err, closeAll())
		}
		regions = append(regions, r)
		if err := r.Start(); err != nil {
			return errors.Join(err, closeAll())
		}
		urls[cfg.Region] = r.URL()
		// A port chosen at start (bulwark up) becomes the region's
		// endpoint; one the topology file names is how peers reach the
		// region, whatever it listens on, and is kept.
		if cfg.Topology != nil {
			if _, ok := cfg.Topology.Endpoint(cfg.Region); !ok {
				cfg.Topology.SetEndpoint(cfg.Region, r.URL())
			}
		}
	}
	if err := ready(urls); err != nil {
		return errors.Join(err, closeAll())
	}
	if m.Ready != nil {
		m.Ready(urls)
	}
	<-ctx.Done()
	fmt.Fprintln(m.Stderr, "shutting down: finishing requests in flight")
	return closeAll()
}
