package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestLinksStayInTheRepo: the Markdown docs and the OpenAPI document name
// only files that exist in the repository (a newcomer has nothing else).
func TestLinksStayInTheRepo(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md", "../BENCHMARKS.md", "openapi.yaml")
	link := regexp.MustCompile(`\]\(([^)#\s]+)`)
	mention := regexp.MustCompile("`((?:docs|internal|cmd|e2e)/[A-Za-z0-9_./-]+\\.(?:md|go|yaml))`")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		if strings.Contains(text, "CONTRACT.md") {
			t.Errorf("%s cites CONTRACT.md, which is not in the repository", f)
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, target)
			}
		}
		for _, m := range mention.FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
				t.Errorf("%s names %s, which does not exist", f, m[1])
			}
		}
	}
}
