package api

import (
	"net/http"
	"net/http/pprof"
)

// pprofRoutes serves the Go runtime's profiles (net/http/pprof) under
// /debug/pprof/, to the admin key only: a CPU or heap profile of a
// production server is how its operator finds where the time or memory
// goes, and a profile names internals no workspace key should see.
func (s *Server) pprofRoutes() {
	s.handle("GET /debug/pprof/{$}", s.admin(pprof.Index))
	s.handle("GET /debug/pprof/{name}", s.admin(func(w http.ResponseWriter, r *http.Request) {
		switch name := r.PathValue("name"); name {
		case "profile":
			pprof.Profile(w, r)
		case "trace":
			pprof.Trace(w, r)
		case "cmdline":
			pprof.Cmdline(w, r)
		case "symbol":
			pprof.Symbol(w, r)
		default:
			pprof.Handler(name).ServeHTTP(w, r)
		}
	}))
}
