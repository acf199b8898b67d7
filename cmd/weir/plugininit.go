package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weirhq/weir/router"
)

// skeletons are the plugin skeletons of `weir plugin init`, one directory
// per language; __NAME__ in a file's text or name is the plugin's name.
//
//go:embed skeletons
var skeletons embed.FS

// weirModule is the module the Go SDK is in.
const weirModule = "github.com/weirhq/weir"

// rustBuild is the rustc command for a reactor with no cargo; TARGET is
// wasm32-wasip1 (current toolchains) or wasm32-wasi (Debian's rustc 1.63).
const rustBuild = `rustc --edition 2021 --target TARGET --crate-type cdylib -O -C strip=symbols -C link-arg=$(rustc --print sysroot)/lib/rustlib/TARGET/lib/self-contained/crt1-reactor.o -C link-arg=--export=_initialize -o __NAME__.wasm __NAME__.rs`

func newPluginInitCmd() *cobra.Command {
	var dir, weirSrc string
	cmd := &cobra.Command{
		Use:   "init go|c|wat|rust NAME",
		Short: "Write a buildable plugin skeleton and say how to build it",
		Long: `init writes a plugin skeleton into ./NAME (--dir): the ABI's exports and a
handler to fill in, with the command that builds it into NAME.wasm, and
prints that command. Go plugins use the SDK (github.com/weirhq/weir/sdk/plugin):
--weir-src points go.mod at a weir source tree (offline, or a fork) instead of
the published module.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			lang, name := args[0], args[1]
			if _, err := fs.Stat(skeletons, "skeletons/"+lang); err != nil {
				return fmt.Errorf("language %q: expected go, c, wat or rust", lang)
			}
			if !router.ValidName(name) {
				return fmt.Errorf("plugin name %q: expected ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", name)
			}
			if lang == "rust" && strings.ContainsAny(name, ".-") {
				return fmt.Errorf("plugin name %q: a Rust crate name has no '.' or '-' (use _)", name)
			}
			if weirSrc != "" && lang != "go" {
				return errors.New("--weir-src is for Go plugins")
			}
			if dir == "" {
				dir = name
			}
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s exists: remove it or give another --dir", dir)
			}
			written, err := writeSkeleton(lang, name, dir)
			if err != nil {
				return err
			}
			if weirSrc != "" {
				if err := replaceWeir(filepath.Join(dir, "go.mod"), weirSrc); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s\nbuild it:\n  cd %s\n", strings.Join(written, ", "), dir)
			for _, c := range buildCommands(lang, name, weirSrc != "") {
				fmt.Fprintf(w, "  %s\n", c)
			}
			fmt.Fprintf(w, "then try it: weir plugin run %s.wasm --input '{\"amount\":21}'\n", name)
			switch {
			case lang == "go" && weirSrc == "":
				fmt.Fprintf(w, "Offline, or with a fork of weir, instead of go get: go mod edit -require=%s@v0.0.0-00010101000000-000000000000 -replace=%s=/path/to/weir (or weir plugin init go %s --weir-src /path/to/weir)\n", weirModule, weirModule, name)
			case lang == "rust":
				fmt.Fprintln(w, "With Debian's rustc 1.63 (libstd-rust-dev-wasm32) the target is wasm32-wasi: replace wasm32-wasip1 in both places. With rustup: rustup target add wasm32-wasip1.")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write (default ./NAME; must not exist)")
	cmd.Flags().StringVar(&weirSrc, "weir-src", "", "Go: build against this weir source tree (a go.mod replace) instead of the published module")
	return cmd
}

// writeSkeleton copies the language's skeleton into dir, naming it, and
// returns the paths written.
func writeSkeleton(lang, name, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root := "skeletons/" + lang
	entries, err := skeletons.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, e := range entries {
		b, err := skeletons.ReadFile(root + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		file := strings.TrimSuffix(e.Name(), ".tmpl")
		if ext := filepath.Ext(file); strings.TrimSuffix(file, ext) == "plugin" {
			file = name + ext
		}
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "__NAME__", name)), 0o644); err != nil {
			return nil, err
		}
		written = append(written, path)
	}
	return written, nil
}

// replaceWeir points a skeleton's go.mod at a weir source tree.
func replaceWeir(gomod, src string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(abs, "sdk", "plugin")); err != nil {
		return fmt.Errorf("--weir-src %s: not a weir source tree: %w", src, err)
	}
	f, err := os.OpenFile(gomod, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n", weirModule, weirModule, abs)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// buildCommands are the commands that build a skeleton into NAME.wasm, run
// in its directory.
func buildCommands(lang, name string, replaced bool) []string {
	var cmds []string
	switch lang {
	case "go":
		if !replaced {
			cmds = append(cmds, "go get "+weirModule+"/sdk/plugin@latest")
		}
		cmds = append(cmds, "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o __NAME__.wasm .")
	case "c":
		cmds = append(cmds, "clang --target=wasm32-wasi -mexec-model=reactor -O2 -o __NAME__.wasm __NAME__.c")
	case "wat":
		cmds = append(cmds, "wat2wasm __NAME__.wat -o __NAME__.wasm")
	case "rust":
		cmds = append(cmds, strings.ReplaceAll(rustBuild, "TARGET", "wasm32-wasip1"))
	}
	for i := range cmds {
		cmds[i] = strings.ReplaceAll(cmds[i], "__NAME__", name)
	}
	return cmds
}
