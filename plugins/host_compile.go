// Compiling plugin modules: one instrumented compilation per module digest,
// shared by reference count, and checked against the ABI's exports and
// imports.

package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/weirhq/weir/internal/weirerr"
)

// compiled is a compiled module shared by every plugin version with the same
// bytes.
type compiled struct {
	sum  [sha256.Size]byte
	mod  wazero.CompiledModule
	refs int // guarded by Host.compileMu
}

// compile returns the compiled module for wasm, compiling it only when no
// module with the same sha256 is held, and checks it against the ABI. The
// caller releases it with releaseCompiled.
func (h *Host) compile(ctx context.Context, wasm []byte) (*compiled, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, weirerr.Invalidf("plugin is not a WebAssembly module: want bytes starting with \\0asm, got %q", prefix(wasm, 4))
	}
	sum := sha256.Sum256(wasm)
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	if c := h.modules[sum]; c != nil {
		c.refs++
		return c, nil
	}
	instrumented, ierr := instrument(wasm)
	var walked walkedInvalid
	switch {
	case errors.Is(ierr, errTablesTooLarge) || errors.Is(ierr, errTooManyLocals):
		return nil, weirerr.Invalidf("%w", ierr)
	case ierr != nil && !errors.As(ierr, &walked):
		// A module the rewriter cannot walk to its end may claim more
		// than it holds, which wazero's decoder would allocate for: it
		// is not handed to wazero (see walkedInvalid).
		return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %w", ierr)
	case ierr != nil:
		// A module with a wrong index or name is most likely invalid:
		// let wazero say why; otherwise report what the rewriter
		// refused.
		orig, err := h.rt.CompileModule(ctx, wasm)
		if err != nil {
			return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %s", firstLine(err))
		}
		_ = orig.Close(ctx)
		return nil, weirerr.Invalidf("plugin cannot be run under a deadline: %v", ierr)
	}
	// Instrumenting keeps every index, so wazero's messages about the
	// instrumented module hold for the original.
	mod, err := h.rt.CompileModule(ctx, instrumented)
	if err != nil {
		return nil, weirerr.Invalidf("plugin is not a valid WebAssembly module: %s", firstLine(err))
	}
	if err := h.checkModule(mod); err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}
	h.compiles.Add(1)
	c := &compiled{sum: sum, mod: mod, refs: 1}
	h.modules[sum] = c
	return c, nil
}

func (h *Host) releaseCompiled(c *compiled) {
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	if c.refs--; c.refs == 0 {
		delete(h.modules, c.sum)
		_ = c.mod.Close(context.Background())
	}
}

// checkModule checks a compiled module's exports and imports against the
// ABI, listing every problem at once.
func (h *Host) checkModule(mod wazero.CompiledModule) error {
	var problems []string
	exports := mod.ExportedFunctions()
	for _, want := range requiredExports {
		def, ok := exports[want.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing export %s (want func%s)", want.name, signature(want.params, want.results)))
			continue
		}
		if !sameTypes(def.ParamTypes(), want.params) || !sameTypes(def.ResultTypes(), want.results) {
			problems = append(problems, fmt.Sprintf("export %s has type func%s, want func%s", want.name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(want.params, want.results)))
		}
	}
	if def, ok := exports[exportIdle]; ok && (len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0) {
		problems = append(problems, fmt.Sprintf("export %s has type func%s, want func() (it is optional)", exportIdle,
			signature(def.ParamTypes(), def.ResultTypes())))
	}
	if _, ok := mod.ExportedMemories()[exportMemory]; !ok {
		problems = append(problems, "missing export memory (the module must export its linear memory as \"memory\")")
	}

	var foreign []string
	for _, def := range mod.ImportedFunctions() {
		modName, name, _ := def.Import()
		host := h.rt.Module(modName)
		if host == nil || (modName != hostModuleName && modName != wasiModuleName) {
			foreign = append(foreign, fmt.Sprintf("%s.%s (unknown module %q)", modName, name, modName))
			continue
		}
		offered, ok := host.ExportedFunctionDefinitions()[name]
		if !ok {
			foreign = append(foreign, fmt.Sprintf("%s.%s (not a function the host offers)", modName, name))
			continue
		}
		if !sameTypes(def.ParamTypes(), offered.ParamTypes()) || !sameTypes(def.ResultTypes(), offered.ResultTypes()) {
			foreign = append(foreign, fmt.Sprintf("%s.%s with type func%s (the host offers func%s)", modName, name,
				signature(def.ParamTypes(), def.ResultTypes()), signature(offered.ParamTypes(), offered.ResultTypes())))
		}
	}
	for _, m := range mod.ImportedMemories() {
		modName, name, _ := m.Import()
		foreign = append(foreign, fmt.Sprintf("%s.%s (memory imports are not offered)", modName, name))
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		problems = append(problems, "imports the host does not offer: "+strings.Join(foreign, ", "))
	}
	if len(problems) > 0 {
		return weirerr.Invalidf("plugin does not follow the weir plugin ABI v%d: %s", abiVersion, strings.Join(problems, "; "))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	sig := "(" + names(params) + ")"
	if len(results) > 0 {
		sig += " -> " + names(results)
	}
	return sig
}
