package engine_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/testenv"
)

// Each concept keeps its workflow, its client and its pure core together,
// and the pure core imports nothing from Temporal: it is what table tests
// exercise without a server, and what keeps the workflows short.
func TestPureCoresImportNoTemporal(t *testing.T) {
	root := testenv.RepoRoot(t)
	for _, file := range []string{
		"limiter/bucket.go", "limiter/policy.go", "limiter/contract.go",
		"internal/governor/mode.go", "internal/governor/state.go", "internal/governor/contract.go",
		"internal/tokens/tokens.go",
		"internal/policy/sampling.go", "internal/policy/quota.go",
		"internal/evidence/evidence.go",
	} {
		for _, imp := range imports(t, filepath.Join(root, file)) {
			if strings.HasPrefix(imp, "go.temporal.io/") {
				t.Errorf("%s imports %s: a pure core imports nothing from Temporal", file, imp)
			}
		}
	}
}

// Nothing climbs back up: the concepts do not import the claim pipeline
// (workflows, activities) or the wiring, and the Governor knows nothing of
// tokens or the limiter (it names its token probe by activity name).
func TestPackagesDoNotClimbBack(t *testing.T) {
	root := testenv.RepoRoot(t)
	const mod = "github.com/socialproof/verifier/"
	forbidden := map[string][]string{
		"limiter":           {"activities", "workflows", "internal/engine", "internal/governor", "internal/tokens", "internal/store"},
		"internal/governor": {"activities", "workflows", "internal/engine", "internal/tokens", "limiter", "internal/store"},
		"internal/tokens":   {"activities", "workflows", "internal/engine"},
		"activities":        {"workflows", "internal/engine"},
		"workflows":         {"internal/engine"},
	}
	for dir, banned := range forbidden {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, imp := range imports(t, f) {
				for _, b := range banned {
					if imp == mod+b {
						t.Errorf("%s imports %s", strings.TrimPrefix(f, root+string(os.PathSeparator)), b)
					}
				}
			}
		}
	}
}

func imports(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range f.Imports {
		out = append(out, strings.Trim(s.Path.Value, `"`))
	}
	return out
}
