package controller

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No Docker daemon runs in CI, so the image is checked by reading the
// Dockerfile against what it must agree with: the Makefile's `make ort`
// (same npm package, version and path), go.mod's Go version, the pinned tag
// of the manifests and the library path gateway.yaml sets.

// dockerfile is the parts of a Dockerfile the test reads.
type dockerfile struct {
	args   map[string]string // ARG defaults
	stages []string          // FROM ... AS name, in order ("" when unnamed)
	froms  []string          // the images of the FROM lines
	lines  []string          // instructions, continuation lines joined
}

func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{args: map[string]string{}}
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		d.lines = append(d.lines, cur.String())
		cur.Reset()
	}
	for _, l := range d.lines {
		fields := strings.Fields(l)
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			if k, v, ok := strings.Cut(fields[1], "="); ok {
				d.args[k] = v
			}
		case "FROM":
			name := ""
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				name = fields[3]
			}
			d.stages = append(d.stages, name)
			d.froms = append(d.froms, fields[1])
		}
	}
	return d
}

// makeVar returns the value of `NAME := value` or `NAME ?= value` in the Makefile.
func makeVar(t *testing.T, makefile, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s*[:?]?=\s*(\S+)`).FindStringSubmatch(makefile)
	if m == nil {
		t.Fatalf("Makefile sets no %s", name)
	}
	return m[1]
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfileAgreesWithMakefileAndManifests(t *testing.T) {
	d := readDockerfile(t, filepath.Join(repoRoot(), "Dockerfile"))
	makefile := readFile(t, "Makefile")
	all := strings.Join(d.lines, "\n")

	// ONNX Runtime: the same npm package, version and path as `make ort`.
	if got, want := d.args["ORT_VERSION"], makeVar(t, makefile, "ORT_VERSION"); got != want {
		t.Errorf("Dockerfile ORT_VERSION %q, Makefile ORT_VERSION %q", got, want)
	}
	for _, s := range []string{"npm pack --silent onnxruntime-node@", "package/bin/napi-v6/linux/", "libonnxruntime.so.1"} {
		if !strings.Contains(all, s) || !strings.Contains(makefile, s) {
			t.Errorf("%q is not in both the Dockerfile and `make ort`", s)
		}
	}
	if !strings.Contains(makefile, "--build-arg ORT_VERSION=$(ORT_VERSION)") {
		t.Error("make image does not pass the Makefile's ORT_VERSION to the build")
	}
	// Go: go.mod's version.
	goMod := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(readFile(t, "go.mod"))
	if goMod == nil || d.args["GO_VERSION"] != goMod[1] {
		t.Errorf("Dockerfile GO_VERSION %q, go.mod go %v", d.args["GO_VERSION"], goMod)
	}
	if !strings.Contains(all, "go build") || !strings.Contains(all, "./cmd/weir") {
		t.Error("the build stage does not build ./cmd/weir")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(), "cmd", "weir", "main.go")); err != nil {
		t.Errorf("the Dockerfile builds ./cmd/weir: %v", err)
	}

	// Stages: every base pinned to a tag (no latest), every COPY --from a stage.
	for _, from := range d.froms {
		from = os.Expand(from, func(k string) string { return d.args[k] })
		_, tag, ok := strings.Cut(from[strings.LastIndex(from, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("base image %q is not pinned to a tag", from)
		}
	}
	for _, m := range regexp.MustCompile(`COPY --from=(\S+)`).FindAllStringSubmatch(all, -1) {
		if !slices.Contains(d.stages, m[1]) {
			t.Errorf("COPY --from=%s names no stage (stages %v)", m[1], d.stages)
		}
	}
	final := d.froms[len(d.froms)-1]
	if !strings.Contains(final, "distroless") && !strings.Contains(final, "slim") {
		t.Errorf("final base %q is neither distroless nor slim", final)
	}

	// Non-root, as the manifests run it.
	user := ""
	lib := ""
	copied := map[string]bool{}
	for _, l := range d.lines {
		f := strings.Fields(l)
		switch strings.ToUpper(f[0]) {
		case "USER":
			user = f[1]
		case "ENV":
			if k, v, ok := strings.Cut(f[1], "="); ok && k == "ONNXRUNTIME_LIB" {
				lib = v
			}
		case "COPY":
			copied[f[len(f)-1]] = true
		}
	}
	if user != "65532:65532" {
		t.Errorf("final USER %q, want 65532:65532 (the manifests' runAsUser)", user)
	}
	if lib == "" || !copied[lib] {
		t.Errorf("ONNXRUNTIME_LIB %q is not where the library is copied (%v)", lib, copied)
	}
	gw := readFile(t, "deploy/kubernetes/gateway.yaml")
	if !strings.Contains(gw, "name: ONNXRUNTIME_LIB\n              value: "+lib) {
		t.Errorf("gateway.yaml does not set ONNXRUNTIME_LIB to %s", lib)
	}

	// The tag make image builds is the one the manifests run.
	kust := readFile(t, "deploy/kubernetes/kustomization.yaml")
	version := makeVar(t, makefile, "VERSION")
	if !regexp.MustCompile(`newName: ghcr.io/weirhq/weir\s+newTag: ` + regexp.QuoteMeta(version) + `\b`).MatchString(kust) {
		t.Errorf("kustomization.yaml does not pin ghcr.io/weirhq/weir to the Makefile's VERSION %s", version)
	}
	ignore := readFile(t, ".dockerignore")
	for _, p := range []string{".git", ".cache", "build"} {
		if !slices.Contains(strings.Fields(ignore), p) {
			t.Errorf(".dockerignore does not leave out %s", p)
		}
	}
}
