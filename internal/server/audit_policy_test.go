package server_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

func loadTopology(t *testing.T, require string) *topology.Topology {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	doc := "regions:\n  - name: us-west-2\n    endpoint: http://127.0.0.1:1\naudit:\n  require: " + require + "\n"
	mustDo(t, os.WriteFile(path, []byte(doc), 0o600))
	topo, err := topology.Load(path)
	mustDo(t, err)
	return topo
}

// TestAuditPolicyFromTopology reads what the deployment must survive from
// the topology file, and refuses to start a region whose file names a
// threat the audit does not know.
func TestAuditPolicyFromTopology(t *testing.T) {
	r := servertest.Start(t, servertest.Options{Topology: loadTopology(t, "[region-outage, corruption]")})
	rep := audited(t, r, nil)
	if want := []audit.Threat{audit.RegionOutage, audit.Corruption}; !slices.Equal(rep.Policy.Require, want) {
		t.Errorf("policy requires %v, want %v", rep.Policy.Require, want)
	}

	_, err := server.Open(context.Background(), server.Config{Region: "us-west-2", DataDir: t.TempDir(),
		Topology: loadTopology(t, "[region-outage, meteor-strike]")})
	if err == nil || !strings.Contains(err.Error(), "meteor-strike") {
		t.Fatalf("open with an unknown threat in the topology file: %v", err)
	}
}
