package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/server"
)

// openapiPath is docs/openapi.yaml, relative to this package.
const openapiPath = "../../docs/openapi.yaml"

// Keys of the server this file's tests start.
const (
	oaWriteKey = "oa-write-key-1"
	oaAPIKey   = "oa-api-key-1"
	oaAdminKey = "oa-admin-key-1"
)

// probeMethods are the methods tried on every documented path to check that
// the ones not documented are not served either. (HEAD is left out: a GET
// pattern serves HEAD too.)
var probeMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// TestOpenAPIMatchesRoutes checks docs/openapi.yaml against the server:
// every documented operation is served, every registered route is
// documented, documented paths serve no other method, the documented
// security matches what an unauthenticated request gets, and the document
// is internally sound.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := documentedOps(t, doc)
	if len(documented) == 0 {
		t.Fatal("docs/openapi.yaml documents no operation")
	}

	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = oaWriteKey, oaAPIKey, oaAdminKey
	srv, err := server.Open(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.API.MarkReady()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	probe := func(t *testing.T, method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+concretePath(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Close = true // no idle connections left behind
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, strings.TrimSpace(string(raw))
	}

	t.Run("documented operations are served", func(t *testing.T) {
		for key, op := range documented {
			method, path, _ := strings.Cut(key, " ")
			code, body := probe(t, method, path)
			if isNoRoute(code, body) {
				t.Errorf("%s is documented but the server has no such route: %d %s", key, code, body)
				continue
			}
			// Without credentials a secured operation is refused with 401
			// (before its body or parameters are looked at); an open one is not.
			secured := len(op.security) > 0
			if secured && code != http.StatusUnauthorized {
				t.Errorf("%s is documented with security %v, but answered %d without a key: %s", key, op.security, code, body)
			}
			if !secured && code == http.StatusUnauthorized {
				t.Errorf("%s is documented without security, but answered 401: %s", key, body)
			}
		}
	})

	t.Run("undocumented methods are not served", func(t *testing.T) {
		for _, path := range documentedPaths(doc) {
			for _, method := range probeMethods {
				if _, ok := documented[method+" "+path]; ok {
					continue
				}
				if code, body := probe(t, method, path); !isNoRoute(code, body) {
					t.Errorf("%s %s is served (%d %s) but not documented", method, path, code, body)
				}
			}
		}
	})

	t.Run("registered routes are documented", func(t *testing.T) {
		routes := registeredRoutes(t)
		if len(routes) < 10 {
			t.Fatalf("found only %d routes in routes(): %v; has route registration changed shape?", len(routes), routes)
		}
		for _, r := range routes {
			method, path, ok := strings.Cut(r, " ")
			if !ok || !strings.HasPrefix(path, "/") {
				t.Errorf("route pattern %q has no method; document it and teach this test its methods", r)
				continue
			}
			path = normalizePattern(path)
			if _, ok := documented[method+" "+path]; !ok {
				t.Errorf("route %q is registered in routes() but not documented in docs/openapi.yaml", r)
			}
			if code, body := probe(t, method, path); isNoRoute(code, body) {
				t.Errorf("route %q read from routes() is not served: %d %s", r, code, body)
			}
		}
	})

	t.Run("document is sound", func(t *testing.T) {
		checkOpenAPISound(t, doc, documented)
	})
}

// TestOpenAPIConditionSchema checks the condition language as documented
// against the parser: every example condition parses, and every documented
// operator exists.
func TestOpenAPIConditionSchema(t *testing.T) {
	doc := loadOpenAPI(t)
	cond, ok := lookupPointer(doc, "/components/schemas/Condition").(map[string]any)
	if !ok {
		t.Fatal("no components/schemas/Condition")
	}
	examples, _ := cond["examples"].([]any)
	if len(examples) == 0 {
		t.Fatal("components/schemas/Condition has no examples")
	}
	for i, ex := range examples {
		raw, err := json.Marshal(ex)
		if err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
		if _, err := condition.Parse(raw); err != nil {
			t.Errorf("example %d %s does not parse: %v", i, raw, err)
		}
	}
	ops, _ := lookupPointer(doc, "/components/schemas/Operator/enum").([]any)
	if len(ops) == 0 {
		t.Fatal("components/schemas/Operator has no enum")
	}
	for _, o := range ops {
		s, _ := o.(string)
		if !condition.Op(s).Valid() {
			t.Errorf("documented operator %v is not an operator of the condition package", o)
		}
	}
	for _, s := range []string{"eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "ends_with",
		"matches", "gt", "gte", "lt", "lte", "between", "exists", "not_exists", "within_last", "not_within_last", "near"} {
		if !slices.Contains(ops, any(s)) {
			t.Errorf("operator %q of the contract is not in components/schemas/Operator", s)
		}
	}
}

// docOp is what the test needs of one documented operation.
type docOp struct {
	security []any
	node     map[string]any
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(openapiPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", openapiPath, err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("%s: openapi version %q, want 3.1.x", openapiPath, doc["openapi"])
	}
	return doc
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func documentedPaths(doc map[string]any) []string {
	paths, _ := doc["paths"].(map[string]any)
	var out []string
	for p := range paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// documentedOps maps "METHOD /path" to each documented operation.
func documentedOps(t *testing.T, doc map[string]any) map[string]docOp {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("docs/openapi.yaml has no paths")
	}
	global, _ := doc["security"].([]any)
	out := map[string]docOp{}
	for p, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			t.Errorf("path %s is not an object", p)
			continue
		}
		for _, m := range httpMethods {
			node, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			op := docOp{security: global, node: node}
			if s, ok := node["security"]; ok {
				op.security, _ = s.([]any)
			}
			out[strings.ToUpper(m)+" "+p] = op
		}
	}
	return out
}

// registeredRoutes reads the route patterns that (*Server).routes
// registers, from the package's source: the first argument of every
// handle, Handle and HandleFunc call in it, with loop variables ranging over
// a literal list of strings expanded. The catch-all "/" is left out.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var routes *ast.FuncDecl
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "routes" && fd.Recv != nil && fd.Body != nil {
				routes = fd
			}
		}
	}
	if routes == nil {
		t.Fatal("no method routes() in package api")
	}
	// Loop variables over literal string lists: for _, r := range []string{...}.
	env := map[string][]string{}
	ast.Inspect(routes.Body, func(n ast.Node) bool {
		rs, ok := n.(*ast.RangeStmt)
		if !ok {
			return true
		}
		id, ok := rs.Value.(*ast.Ident)
		lit, ok2 := rs.X.(*ast.CompositeLit)
		if !ok || !ok2 {
			return true
		}
		var vals []string
		for _, e := range lit.Elts {
			if s, ok := stringLit(e); ok {
				vals = append(vals, s)
			}
		}
		if len(vals) == len(lit.Elts) {
			env[id.Name] = vals
		}
		return true
	})
	var out []string
	ast.Inspect(routes.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch sel.Sel.Name {
		case "handle", "Handle", "HandleFunc":
		default:
			return true
		}
		pats, ok := evalStrings(call.Args[0], env)
		if !ok {
			t.Errorf("%s: cannot read the route pattern of this %s call; keep patterns string literals (or + over a literal list) or teach this test",
				fset.Position(call.Pos()), sel.Sel.Name)
			return true
		}
		for _, p := range pats {
			if p != "/" {
				out = append(out, p)
			}
		}
		return true
	})
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// evalStrings evaluates a string expression made of literals, + and loop
// variables over literal lists, to every value it takes.
func evalStrings(e ast.Expr, env map[string][]string) ([]string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		s, ok := stringLit(x)
		return []string{s}, ok
	case *ast.ParenExpr:
		return evalStrings(x.X, env)
	case *ast.Ident:
		v, ok := env[x.Name]
		return v, ok
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return nil, false
		}
		l, ok := evalStrings(x.X, env)
		if !ok {
			return nil, false
		}
		r, ok := evalStrings(x.Y, env)
		if !ok {
			return nil, false
		}
		var out []string
		for _, a := range l {
			for _, b := range r {
				out = append(out, a+b)
			}
		}
		return out, true
	}
	return nil, false
}

var wildcard = regexp.MustCompile(`\{([^}]*)\}`)

// normalizePattern turns a ServeMux path pattern into its OpenAPI form:
// {name...} becomes {name}, and the end anchor {$} goes.
func normalizePattern(p string) string {
	return wildcard.ReplaceAllStringFunc(p, func(w string) string {
		name := strings.TrimSuffix(w[1:len(w)-1], "...")
		if name == "$" {
			return ""
		}
		return "{" + name + "}"
	})
}

// concretePath fills a path template's parameters.
func concretePath(p string) string { return wildcard.ReplaceAllString(p, "x") }

// isNoRoute reports the server's catch-all answers: 404 for an unknown
// path, 405 for a known path under a method it does not serve.
func isNoRoute(code int, body string) bool {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil {
		return false
	}
	switch code {
	case http.StatusNotFound:
		return strings.HasPrefix(e.Error, "no route ")
	case http.StatusMethodNotAllowed:
		return strings.Contains(e.Error, " is not allowed on ")
	}
	return false
}

// checkOpenAPISound checks what a careless edit breaks: unique
// operationIds, responses on every operation, declared path parameters,
// known security schemes and resolvable local $refs.
func checkOpenAPISound(t *testing.T, doc map[string]any, ops map[string]docOp) {
	schemes, _ := lookupPointer(doc, "/components/securitySchemes").(map[string]any)
	ids := map[string]string{}
	for key, op := range ops {
		id, _ := op.node["operationId"].(string)
		if id == "" {
			t.Errorf("%s has no operationId", key)
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %q is used by %s and %s", id, key, other)
		}
		ids[id] = key
		resp, _ := op.node["responses"].(map[string]any)
		has2xx := false
		for code := range resp {
			has2xx = has2xx || strings.HasPrefix(code, "2")
		}
		if !has2xx {
			t.Errorf("%s documents no 2xx response", key)
		}
		for _, req := range op.security {
			m, _ := req.(map[string]any)
			for name := range m {
				if _, ok := schemes[name]; !ok {
					t.Errorf("%s uses unknown security scheme %q", key, name)
				}
			}
		}
		// Every {param} of the path is declared as a path parameter.
		method, path, _ := strings.Cut(key, " ")
		item, _ := lookupPointer(doc, "/paths/"+escapePointer(path)).(map[string]any)
		declared := map[string]bool{}
		for _, list := range []any{item["parameters"], op.node["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm, _ := p.(map[string]any)
				if ref, ok := pm["$ref"].(string); ok {
					pm, _ = lookupPointer(doc, strings.TrimPrefix(ref, "#")).(map[string]any)
				}
				if pm["in"] == "path" {
					name, _ := pm["name"].(string)
					declared[name] = true
				}
			}
		}
		for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s %s: path parameter %q is not declared", method, path, m[1])
			}
		}
	}
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if !strings.HasPrefix(ref, "#/") {
					t.Errorf("%s: $ref %q is not local", at, ref)
				} else if lookupPointer(doc, ref[1:]) == nil {
					t.Errorf("%s: $ref %q does not resolve", at, ref)
				}
			}
			for k, e := range x {
				walk(e, at+"/"+escapePointer(k))
			}
		case []any:
			for i, e := range x {
				walk(e, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "")
}

// lookupPointer resolves an RFC 6901 pointer in doc, or returns nil.
func lookupPointer(doc any, ptr string) any {
	if ptr == "" {
		return doc
	}
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[tok]
			if !ok {
				return nil
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			cur = x[i]
		default:
			return nil
		}
	}
	return cur
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
