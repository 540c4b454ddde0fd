package server

import "net/http"

// registerReplicationAPI adds the replication admin calls.
func (r *Region) registerReplicationAPI(mux *http.ServeMux) {}
