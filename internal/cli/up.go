package cli

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/topology"
)

// upRegions are the regions of the embedded default deployment, in the
// order of their ports: the first listens on --listen, the next on the
// following port.
var upRegions = []string{"us-west-2", "us-east-1"}

// upRegion is the region on --listen, the one to start with.
const upRegion = "us-west-2"

func (m *Main) up(ctx context.Context, args []string) error {
	fs := m.flags("up")
	rf := addRunFlags(fs)
	data := rf.data
	listen := fs.String("listen", "127.0.0.1:9000", "address of the first region's endpoint; the second region takes the next port")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a self-signed certificate kept in the data directory")
	var addrs []string
	log, creds, err := m.prepare(ctx, fs, rf, args, func() error {
		var err error
		addrs, err = consecutiveAddrs(*listen, len(upRegions))
		return err
	})
	if err != nil {
		return err
	}
	var cert, key string
	if *useTLS {
		// One certificate for both regions: it names the loopback
		// addresses, and each region trusts it when calling the other.
		cert, key, err = server.SelfSignedCert(filepath.Join(*data, "tls"))
		if err != nil {
			return err
		}
	}
	// The endpoints are filled in once the listeners are up (the ports may
	// be chosen then).
	regions := make([]topology.Region, len(upRegions))
	for i, name := range upRegions {
		regions[i].Name = name
	}
	topo, err := topology.New(regions...)
	if err != nil {
		return err
	}
	dkey, err := m.deploymentKey(*data)
	if err != nil {
		return err
	}
	metricsToken, metricsFile, err := rf.metricsToken()
	if err != nil {
		return err
	}
	keys, bootstrap := creds.serverKeys()
	cfgs := make([]server.Config, len(upRegions))
	for i, name := range upRegions {
		cfgs[i] = server.Config{
			Region: name, DataDir: filepath.Join(*data, name), Listen: addrs[i],
			TLSCert: cert, TLSKey: key, Topology: topo,
			Keys: keys, BootstrapKeys: bootstrap, Logger: log, UploadExpiry: *rf.uploadExpiry, Replication: rf.replication(),
			DeploymentKey: dkey, MetricsToken: metricsToken, MetricsPublic: *rf.metricsPublic,
			Clients: rf.clients(), Disk: *rf.disk,
		}
		if err := rf.configure(&cfgs[i]); err != nil {
			return err
		}
	}
	return m.runRegions(ctx, cfgs, func(urls map[string]string) error {
		if err := creds.save(log); err != nil {
			return err
		}
		w := m.Stdout
		url := urls[upRegion]
		fmt.Fprintf(w, "Bulwark is up: two regions, each with its own data and endpoint.\n\n")
		fmt.Fprintf(w, "  region     endpoint\n")
		for _, name := range upRegions {
			fmt.Fprintf(w, "  %-10s %s\n", name, urls[name])
		}
		fmt.Fprintln(w)
		printKey(w, creds)
		fmt.Fprintf(w, "Use it with the aws CLI (any endpoint serves every bucket):\n\n")
		fmt.Fprintf(w, "  %s\n", exportLine(creds, upRegion))
		if *useTLS {
			fmt.Fprintf(w, "  export AWS_CA_BUNDLE=%s   # trust the self-signed certificate\n", cert)
		}
		fmt.Fprintf(w, "  aws --endpoint-url %s s3 mb s3://my-bucket\n", url)
		fmt.Fprintf(w, "  aws --endpoint-url %s s3api create-bucket --bucket my-bucket-east --create-bucket-configuration LocationConstraint=%s\n\n", url, upRegions[1])
		fmt.Fprintf(w, "More accounts: bulwark admin account create NAME (as the admin)\n")
		fmt.Fprintf(w, "Metrics: curl -H \"Authorization: Bearer $(cat %s)\" %s/metrics\n", metricsFile, url)
		fmt.Fprintf(w, "Stop: Ctrl-C\n")
		return nil
	})
}

// consecutiveAddrs returns n listen addresses on host, from port on: with
// port 0, every one picks a free port of its own.
func consecutiveAddrs(listen string, n int) ([]string, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port+n-1 > 65535 {
		return nil, fmt.Errorf("-listen %q: the port must be a number up to %d", listen, 65535-n+1)
	}
	addrs := make([]string, n)
	for i := range addrs {
		q := 0
		if port != 0 {
			q = port + i
		}
		addrs[i] = net.JoinHostPort(host, strconv.Itoa(q))
	}
	return addrs, nil
}
