package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// Prefix is the URL path the console's assets are served under.
const Prefix = "/console/"

// security headers: the console runs only its own scripts and styles and
// talks only to its own origin.
const csp = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Handler serves the console: index.html for the root, and the assets by
// name under Prefix.
type Handler struct{ root fs.FS }

// New returns the console's handler.
func New() *Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &Handler{root: sub}
}

// Index serves the console's page (GET /).
func (h *Handler) Index(w http.ResponseWriter, r *http.Request) { h.serve(w, "index.html") }

// Asset serves one static file (GET /console/{file}).
func (h *Handler) Asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		notFound(w, name)
		return
	}
	h.serve(w, name)
}

func (h *Handler) serve(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(h.root, name)
	if err != nil {
		notFound(w, name)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if path.Ext(name) == ".js" {
		ct = "text/javascript; charset=utf-8" // ES modules need a JavaScript type
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	// Assets change with the binary; revalidation is cheap on localhost.
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

func notFound(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	json.NewEncoder(w).Encode(map[string]string{"error": "no console file " + name})
}
