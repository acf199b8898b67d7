package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release weir is built and tested against.
const ORTVersion = "1.30.0"

// LibraryCachePath is where `make ort` puts the runtime, relative to the
// repository (or working directory) root.
var LibraryCachePath = filepath.Join(".cache", "onnxruntime-"+ORTVersion, "libonnxruntime.so.1")

// FindLibrary returns the ONNX Runtime shared library to load: flag if set,
// else $ONNXRUNTIME_LIB, else the `make ort` cache in the working directory
// or one of its parents.
func FindLibrary(flag string) (string, error) {
	for _, p := range []string{flag, os.Getenv("ONNXRUNTIME_LIB")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ONNX Runtime library %s: %w", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, LibraryCachePath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("ONNX Runtime library not found: run `make ort` in the weir repository " +
		"(it fetches libonnxruntime.so.1 " + ORTVersion + " from the npm package onnxruntime-node), " +
		"or pass --ort-lib / set ONNXRUNTIME_LIB to the library's path")
}

var (
	initOnce sync.Once
	initErr  error
	initPath string
)

// InitRuntime loads the ONNX Runtime library at path and creates the
// process-wide environment. The runtime allows one environment per process,
// so only the first call does anything; later calls report its result.
func InitRuntime(path string) error {
	initOnce.Do(func() {
		initPath = path
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("initialise ONNX Runtime from %s: %w", path, err)
			return
		}
		_ = ort.DisableTelemetry()
		initErr = initStrings(path)
	})
	if initErr == nil && path != initPath {
		return fmt.Errorf("ONNX Runtime already loaded from %s, cannot load %s too", initPath, path)
	}
	return initErr
}

// RuntimeVersion is the version string of the loaded ONNX Runtime.
func RuntimeVersion() string { return ort.GetVersion() }
