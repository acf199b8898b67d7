package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/weirhq/weir/internal/leakcheck"
)

// One API server (kube-apiserver + etcd) serves every test of the package;
// each test works in its own namespace.
var (
	envOnce sync.Once
	envErr  error
	testEnv *envtest.Environment
	envCfg  *rest.Config
	envC    client.Client
	nsSeq   atomic.Int64
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// startEnv returns a client of the shared API server, starting it on first use.
// Without the binaries the test fails and says how to build them.
func startEnv(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	envOnce.Do(func() {
		assets := os.Getenv("KUBEBUILDER_ASSETS")
		if assets == "" {
			assets = filepath.Join(repoRoot(), ".cache", "envtest")
		}
		for _, bin := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
				envErr = fmt.Errorf("envtest binary %s missing in %s: run make envtest-assets", bin, assets)
				return
			}
		}
		if os.Getenv("WEIR_TEST_VERBOSE") != "" {
			logf.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: 1}))
		} else {
			logf.SetLogger(logr.Discard())
		}
		testEnv = &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "deploy", "kubernetes", "crd")},
			ErrorIfCRDPathMissing: true,
			// kube-apiserver needs far more than envtest's 20s default on
			// a loaded 2-core machine (make test beside other work).
			ControlPlaneStartTimeout: 3 * time.Minute,
			ControlPlaneStopTimeout:  time.Minute,
		}
		if envCfg, envErr = testEnv.Start(); envErr != nil {
			envErr = fmt.Errorf("start envtest (run make envtest-assets if binaries are missing): %w", envErr)
			return
		}
		envC, envErr = client.New(envCfg, client.Options{Scheme: Scheme()})
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envCfg, envC
}

// Every goroutine a test starts (managers, informers, clients) has an owner
// that stops it: none may outlive the tests and the shared API server.
func TestMain(m *testing.M) {
	leakcheck.MainThen(m, func() {
		if testEnv != nil {
			if err := testEnv.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop envtest:", err)
			}
		}
	})
}

// newNamespace creates a fresh namespace for one test.
func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	name := fmt.Sprintf("weir-test-%d-%d", os.Getpid()%10000, nsSeq.Add(1))
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	// No controller-manager runs in envtest to create the default
	// ServiceAccount that pod admission looks for.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}
	if err := c.Create(context.Background(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default ServiceAccount: %v", err)
	}
	return name
}

// startManager runs a manager built by NewManager until the test ends.
func startManager(t *testing.T, cfg *rest.Config, opts Options) {
	t.Helper()
	opts.REST = cfg
	opts.MetricsAddr, opts.HealthAddr = "0", "0"
	opts.skipNameValidation = true // several managers live in one test process
	mgr, err := NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}
