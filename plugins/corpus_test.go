package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// The WebAssembly spec test suite, as wazero ships it in its module (the
// .wast scripts converted by wast2json: a JSON list of commands beside the
// .wasm files), is the corpus for the interrupt instrumentation. Every
// module wazero compiles must still compile once instrumented, and behave
// the same: the test keeps two runtimes, one running the modules as they
// are and one running them instrumented, replays each script's commands in
// both and compares every call's results, traps and globals. The
// instrumented side trips to Go every corpusTicks checks, so the path a
// deadline takes runs inside the corpus's loops and calls too.
//
// A module wazero rejects must stay rejected: instrumenting must not make
// an invalid module valid (the host reports wazero's verdict on the
// instrumented module as the plugin's).

// corpusTicks makes the instrumented modules take the trip to Go often.
const corpusTicks = 3

// corpusFeatures enables what wazero can compile, beyond the V2 the host
// uses, so the proposals instrument claims to walk are covered too.
const corpusFeatures = api.CoreFeaturesV2 | experimental.CoreFeaturesThreads |
	experimental.CoreFeaturesTailCall | experimental.CoreFeaturesExtendedConst |
	experimental.CoreFeaturesExceptionHandling | experimental.CoreFeaturesTypedFunctionReferences

// spectestDir is where the wazero module in the module cache keeps the spec
// test scripts.
func spectestDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(wazeroDir(t), "internal", "integration_test", "spectest")
}

// wazeroDir is the wazero module in the module cache.
func wazeroDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if errors.Is(err, exec.ErrNotFound) {
		t.Skip("the go command is not on PATH, so the wazero module (the corpus) cannot be found")
	}
	if err != nil {
		t.Fatalf("go list -m github.com/tetratelabs/wazero: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(dir, "internal", "integration_test", "spectest", "testdata", "spectest.wasm")); err != nil {
		t.Fatalf("the wazero module has no spec tests where expected: %v", err)
	}
	return dir
}

// sampleEvery is how sparsely the corpus tests sample: -short takes a
// fifth, spread over the proposals and the alphabet; the race detector,
// which has nothing to watch here (one goroutine), a twenty-fifth.
func sampleEvery() int {
	switch {
	case raceBuild:
		return 25
	case testing.Short():
		return 5
	}
	return 1
}

// The other modules in wazero's module (its fuzzers' regressions, the
// engine tests' modules, compiled Go, TinyGo, Rust and Zig programs) get
// the same verdict from wazero instrumented as they are.
func TestInstrumentWazeroTestdata(t *testing.T) {
	ctx := context.Background()
	root := wazeroDir(t)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(corpusFeatures))
	defer rt.Close(ctx)
	var files []string
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case e.IsDir() && e.Name() == "spectest":
			return filepath.SkipDir // TestInstrumentSpecCorpus
		case strings.HasSuffix(path, ".wasm"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil || len(files) < 100 {
		t.Fatalf("want wazero's test modules under %s, found %d (%v)", root, len(files), err)
	}
	tried, compiled := 0, 0
	for i, f := range files {
		if i%sampleEvery() != 0 {
			continue
		}
		tried++
		wasm, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		_, perr := rt.CompileModule(ctx, wasm)
		out, ierr := instrument(wasm)
		if ierr == nil {
			_, ierr = rt.CompileModule(ctx, out)
		}
		switch {
		case perr == nil && ierr != nil:
			t.Errorf("%s: wazero compiles the module but not instrumented: %s", rel, errLine(ierr))
		case perr != nil && ierr == nil:
			t.Errorf("%s: wazero rejects the module (%s) but accepts it instrumented", rel, errLine(perr))
		case perr == nil:
			compiled++
		}
	}
	t.Logf("%d of %d modules (of %d) compiled, and compiled instrumented", compiled, tried, len(files))
}

type specScript struct {
	Commands []specCommand `json:"commands"`
}

type specCommand struct {
	Type       string `json:"type"`
	Line       int    `json:"line"`
	Name       string `json:"name"`
	Filename   string `json:"filename"`
	ModuleType string `json:"module_type"`
	As         string `json:"as"`
	Action     struct {
		Type   string      `json:"type"`
		Module string      `json:"module"`
		Field  string      `json:"field"`
		Args   []specValue `json:"args"`
	} `json:"action"`
}

type specValue struct {
	Type     string `json:"type"`
	LaneType string `json:"lane_type"`
	Value    any    `json:"value"`
}

// words encodes v as wazero's call arguments: one uint64, or two for v128.
func (v specValue) words() ([]uint64, error) {
	if v.Type == "v128" {
		lanes, ok := v.Value.([]any)
		width := map[string]int{"i8": 8, "i16": 16, "i32": 32, "i64": 64, "f32": 32, "f64": 64}[v.LaneType]
		if !ok || width == 0 || len(lanes) != 128/width {
			return nil, fmt.Errorf("v128 value %v with lane type %q", v.Value, v.LaneType)
		}
		w := make([]uint64, 2)
		for i, l := range lanes {
			s, _ := l.(string)
			n, err := strconv.ParseUint(s, 10, width)
			if err != nil {
				return nil, fmt.Errorf("v128 lane %q: %w", s, err)
			}
			bit := i * width
			w[bit/64] |= n << (bit % 64)
		}
		return w, nil
	}
	s, _ := v.Value.(string)
	if v.Value == nil || s == "null" {
		return []uint64{0}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s value %q: %w", v.Type, s, err)
	}
	if v.Type == "externref" {
		n++ // wazero's externref 0 is null
	}
	return []uint64{n}, nil
}

// corpusSide is one of the two runtimes replaying a script.
type corpusSide struct {
	rt         wazero.Runtime
	transform  func([]byte) ([]byte, error)
	last       api.Module
	named      map[string]api.Module
	instrument bool
}

func newCorpusSide(t *testing.T, ctx context.Context, spectest []byte, instrumented bool) *corpusSide {
	t.Helper()
	s := &corpusSide{
		rt:         wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(corpusFeatures)),
		named:      map[string]api.Module{},
		instrument: instrumented,
	}
	t.Cleanup(func() { _ = s.rt.Close(ctx) })
	if _, err := s.instantiate(ctx, spectest, "spectest"); err != nil {
		t.Fatalf("spectest module: %v", err)
	}
	return s
}

// compile compiles wasm, instrumented on the instrumented side.
func (s *corpusSide) compile(ctx context.Context, wasm []byte) (wazero.CompiledModule, error) {
	if s.instrument {
		out, err := instrumentTicks(wasm, corpusTicks)
		if err != nil {
			return nil, fmt.Errorf("instrument: %w", err)
		}
		wasm = out
	}
	return s.rt.CompileModule(ctx, wasm)
}

// instantiate compiles and instantiates wasm under name, running its start
// section (which instrument turns into the startExport export).
func (s *corpusSide) instantiate(ctx context.Context, wasm []byte, name string) (api.Module, error) {
	cm, err := s.compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	m, err := s.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(name).WithStartFunctions())
	if err != nil {
		return nil, err
	}
	if start := m.ExportedFunction(startExport); start != nil && s.instrument {
		if _, err := start.Call(ctx); err != nil {
			_ = m.Close(ctx)
			return nil, err
		}
	}
	return m, nil
}

// call performs a command's action: its results, or its error.
func (s *corpusSide) call(ctx context.Context, c *specCommand) ([]uint64, []api.ValueType, error) {
	m := s.last
	if c.Action.Module != "" {
		m = s.named[c.Action.Module]
	}
	if m == nil {
		return nil, nil, errNoModule
	}
	switch c.Action.Type {
	case "get":
		g := m.ExportedGlobal(c.Action.Field)
		if g == nil {
			return nil, nil, fmt.Errorf("no global %q", c.Action.Field)
		}
		return []uint64{g.Get()}, []api.ValueType{g.Type()}, nil
	case "invoke":
		f := m.ExportedFunction(c.Action.Field)
		if f == nil {
			return nil, nil, fmt.Errorf("no function %q", c.Action.Field)
		}
		var args []uint64
		for _, a := range c.Action.Args {
			w, err := a.words()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, w...)
		}
		res, err := f.Call(ctx, args...)
		return res, f.Definition().ResultTypes(), err
	}
	return nil, nil, fmt.Errorf("action type %q", c.Action.Type)
}

var errNoModule = errors.New("no module to act on")

// sameResults compares two result lists of the given types: bit for bit,
// except that NaNs match NaNs (their payload is the hardware's choice) and
// references match by nullness (they are pointers into each runtime).
func sameResults(a, b []uint64, types []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	i := 0
	for _, typ := range types {
		switch typ {
		case api.ValueTypeF32:
			x, y := math.Float32frombits(uint32(a[i])), math.Float32frombits(uint32(b[i]))
			if a[i] != b[i] && !(x != x && y != y) {
				return false
			}
		case api.ValueTypeF64:
			x, y := math.Float64frombits(a[i]), math.Float64frombits(b[i])
			if a[i] != b[i] && !(x != x && y != y) {
				return false
			}
		case api.ValueTypeI32, api.ValueTypeI64:
			if a[i] != b[i] {
				return false
			}
		case 0x7B: // v128
			if a[i] != b[i] || a[i+1] != b[i+1] {
				return false
			}
			i++
		default: // references
			if (a[i] == 0) != (b[i] == 0) {
				return false
			}
		}
		i++
	}
	return i == len(a)
}

// errLine is an error's first line: wazero adds a stack trace after it,
// which names the instrumented functions' offsets.
func errLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

type corpusStats struct {
	modules, instrumented, rejected, actions int
}

func TestInstrumentSpecCorpus(t *testing.T) {
	dir := spectestDir(t)
	spectest, err := os.ReadFile(filepath.Join(dir, "testdata", "spectest.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := filepath.Glob(filepath.Join(dir, "*", "testdata", "*.json"))
	if err != nil || len(scripts) < 200 {
		t.Fatalf("want the spec test scripts under %s, found %d (%v)", dir, len(scripts), err)
	}
	var st corpusStats
	for i, script := range scripts {
		if i%sampleEvery() != 0 {
			continue
		}
		rel, _ := filepath.Rel(dir, script)
		t.Run(filepath.ToSlash(rel), func(t *testing.T) {
			replaySpecScript(t, script, spectest, &st)
		})
	}
	t.Logf("%d modules: %d compiled and instrumented, %d rejected by wazero; %d actions compared",
		st.modules, st.instrumented, st.rejected, st.actions)
	if st.instrumented == 0 || st.actions == 0 {
		t.Fatal("nothing compared")
	}
}

func replaySpecScript(t *testing.T, path string, spectest []byte, st *corpusStats) {
	ctx := context.Background()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var script specScript
	if err := json.Unmarshal(raw, &script); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	plain := newCorpusSide(t, ctx, spectest, false)
	inst := newCorpusSide(t, ctx, spectest, true)
	dir := filepath.Dir(path)
	for i := 0; i < len(script.Commands); i++ {
		c := &script.Commands[i]
		where := fmt.Sprintf("%s:%d %s", filepath.Base(path), c.Line, c.Type)
		switch c.Type {
		case "module", "assert_invalid", "assert_malformed", "assert_unlinkable", "assert_uninstantiable":
			if c.Filename == "" || c.ModuleType == "text" || !strings.HasSuffix(c.Filename, ".wasm") {
				continue
			}
			wasm, err := os.ReadFile(filepath.Join(dir, c.Filename))
			if err != nil {
				t.Fatal(err)
			}
			st.modules++
			_, perr := plain.compile(ctx, wasm)
			_, ierr := inst.compile(ctx, wasm)
			if perr != nil {
				st.rejected++
				if ierr == nil {
					t.Errorf("%s %s: wazero rejects the module (%s) but accepts it instrumented", where, c.Filename, errLine(perr))
				}
				if c.Type == "module" {
					plain.last, inst.last = nil, nil
				}
				continue
			}
			if ierr != nil {
				t.Errorf("%s %s: wazero compiles the module but not instrumented: %s", where, c.Filename, errLine(ierr))
				plain.last, inst.last = nil, nil
				continue
			}
			st.instrumented++
			name := ""
			if c.Type == "module" && i+1 < len(script.Commands) && script.Commands[i+1].Type == "register" {
				name = script.Commands[i+1].As
				i++
			}
			pm, perr := plain.instantiate(ctx, wasm, name)
			im, ierr := inst.instantiate(ctx, wasm, name)
			if (perr == nil) != (ierr == nil) {
				t.Errorf("%s %s: instantiating gives %s, instrumented %s", where, c.Filename, errLine(perr), errLine(ierr))
			}
			if c.Type != "module" || perr != nil || ierr != nil {
				if c.Type == "module" {
					plain.last, inst.last = nil, nil
				}
				continue
			}
			plain.last, inst.last = pm, im
			if c.Name != "" {
				plain.named[c.Name], inst.named[c.Name] = pm, im
			}
		case "assert_return", "action", "assert_trap", "assert_exhaustion", "assert_exception":
			pres, types, perr := plain.call(ctx, c)
			ires, _, ierr := inst.call(ctx, c)
			if errors.Is(perr, errNoModule) || errors.Is(ierr, errNoModule) {
				continue
			}
			st.actions++
			what := fmt.Sprintf("%s %s %q %v", where, c.Action.Type, c.Action.Field, c.Action.Args)
			switch {
			case errLine(perr) != errLine(ierr):
				t.Errorf("%s: %s, instrumented %s", what, errLine(perr), errLine(ierr))
			case perr == nil && !sameResults(pres, ires, types):
				t.Errorf("%s: results %x, instrumented %x", what, pres, ires)
			}
		case "register":
			// Only a register right after its module is supported (as in
			// wazero's own runner); a later one leaves importers unlinkable
			// on both sides alike.
		}
	}
}

// The corpus test's comparison: what it lets pass and what it catches.
func TestSameResults(t *testing.T) {
	nan := uint64(math.Float64bits(math.NaN()))
	for _, c := range []struct {
		a, b  []uint64
		types []api.ValueType
		same  bool
	}{
		{[]uint64{1}, []uint64{1}, []api.ValueType{api.ValueTypeI32}, true},
		{[]uint64{1}, []uint64{2}, []api.ValueType{api.ValueTypeI32}, false},
		{[]uint64{nan}, []uint64{nan | 1}, []api.ValueType{api.ValueTypeF64}, true},
		{[]uint64{nan}, []uint64{0}, []api.ValueType{api.ValueTypeF64}, false},
		{[]uint64{1, 2}, []uint64{1, 3}, []api.ValueType{0x7B}, false},
		{[]uint64{5}, []uint64{9}, []api.ValueType{api.ValueTypeExternref}, true},
		{[]uint64{5}, []uint64{0}, []api.ValueType{api.ValueTypeExternref}, false},
	} {
		if got := sameResults(c.a, c.b, c.types); got != c.same {
			t.Errorf("sameResults(%x, %x, %v) = %v, want %v", c.a, c.b, c.types, got, c.same)
		}
	}
}
