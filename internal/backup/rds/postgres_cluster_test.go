package rds

import "github.com/bulwark/bulwark/internal/meta/pg/pgtest"

// The private PostgreSQL clusters of this package's tests are pgtest's,
// which other packages' tests use too; these names keep the tests short.
type (
	TestCluster        = pgtest.Cluster
	TestClusterOptions = pgtest.ClusterOptions
)

var (
	StartTestCluster = pgtest.StartCluster
	StopServer       = pgtest.StopServer
	SocketConn       = pgtest.SocketConn
	FreePort         = pgtest.FreePort
	RequireTool      = pgtest.RequireTool
)
