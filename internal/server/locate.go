package server

import "net/http"

// registerPeerAPI adds the calls regions make to each other.
func (r *Region) registerPeerAPI(mux *http.ServeMux) {}
