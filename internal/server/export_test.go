package server

// AdminRoutePatterns lists the patterns of every admin and peer API
// route, for the authorization tests to check they cover them all.
func AdminRoutePatterns(r *Region) []string {
	var out []string
	for _, rt := range r.adminRoutes() {
		out = append(out, rt.pattern)
	}
	return out
}
