package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"

	"github.com/weirhq/weir/internal/natsx"
	"github.com/weirhq/weir/internal/onnx"
	"github.com/weirhq/weir/internal/testpoll"
	"github.com/weirhq/weir/monitor"
)

// full is true under `make chaos`: longer faults, more load.
var full = os.Getenv("WEIR_CHAOS") == "full"

// weirBin is the weir binary built from this repository for the suite.
var weirBin string

const adminToken = "chaos-admin-token"

func TestMain(m *testing.M) {
	// The test binary doubles as a standalone NATS server, so a test can
	// freeze (SIGSTOP) or kill NATS without touching weir.
	if dir := os.Getenv("WEIR_CHAOS_NATS_DIR"); dir != "" {
		runNATS(dir, os.Getenv("WEIR_CHAOS_NATS_LISTEN"), os.Getenv("WEIR_CHAOS_NATS_CLUSTER"))
		return
	}
	tmp, err := os.MkdirTemp("", "weir-chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	weirBin = filepath.Join(tmp, "weir")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", weirBin, "./cmd/weir")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building weir for the chaos suite: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}

// runNATS runs a NATS server; cluster, when set, is "name route-listen
// route,route,...": the server is that node of a cluster whose nodes share
// clusterUser's credentials.
func runNATS(dir, listen, cluster string) {
	o := natsx.Options{Listen: listen, StoreDir: dir, SyncInterval: natsx.DefaultSyncInterval}
	if f := strings.Fields(cluster); len(f) == 3 {
		o.ServerName, o.User, o.Password = f[0], clusterUser, clusterPass
		o.Cluster = &natsx.ClusterOptions{Name: "chaos", Listen: f[1], Routes: strings.Split(f[2], ",")}
	}
	e, err := natsx.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos nats:", err)
		os.Exit(1)
	}
	fmt.Println("NATS", e.URL())
	select {} // until killed
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsProc is a NATS server in a child process.
type natsProc struct {
	t       *testing.T
	dir     string
	listen  string
	cluster string // WEIR_CHAOS_NATS_CLUSTER, "" for a single server
	url     string // with the credentials the child generated into dir
	cmd     *exec.Cmd
}

// The credentials every node of a cluster started by startCluster uses.
const clusterUser, clusterPass = "weir", "chaos-cluster-secret"

// startCluster runs a JetStream cluster of n nodes, named n1, n2, ..., each
// in its own process.
func startCluster(t *testing.T, n int) []*natsProc {
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	nodes := make([]*natsProc, n)
	for i := range nodes {
		p := &natsProc{t: t, dir: t.TempDir(), listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
			cluster: fmt.Sprintf("n%d %s %s", i+1, routes[i], strings.Join(routes, ","))}
		p.start()
		t.Cleanup(p.kill)
		nodes[i] = p
	}
	// JetStream answers once the nodes have elected a meta leader.
	nc, err := nats.Connect(nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	testpoll.For(t, 60*time.Second, "the NATS cluster's JetStream to answer", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return nodes
}

func startNATS(t *testing.T) *natsProc {
	n := &natsProc{t: t, dir: t.TempDir(), listen: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	n.start()
	t.Cleanup(func() { n.kill() })
	return n
}

func (n *natsProc) URL() string { return n.url }

func (n *natsProc) start() {
	n.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WEIR_CHAOS_NATS_DIR="+n.dir, "WEIR_CHAOS_NATS_LISTEN="+n.listen,
		"WEIR_CHAOS_NATS_CLUSTER="+n.cluster)
	out, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.cmd = cmd
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "NATS ") {
		n.t.Fatalf("chaos nats did not start: %q %v", line, err)
	}
	n.url = strings.TrimSpace(strings.TrimPrefix(line, "NATS "))
}

// signal sends s; SIGSTOP returns once the process is stopped (a signal
// is delivered when the process next runs, which on a busy machine can be
// after a request the test meant for a frozen NATS).
func (n *natsProc) signal(s syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(s); err != nil {
		n.t.Fatalf("signal %v to nats: %v", s, err)
	}
	if s != syscall.SIGSTOP {
		return
	}
	testpoll.For(n.t, 10*time.Second, "nats to be stopped", func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			return err
		}
		// The state follows the command name, which ends with ')'.
		if st := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(st) == 0 || st[0] != "T" {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})
}

func (n *natsProc) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGCONT)
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// weirProc is `weir serve` in a child process.
type weirProc struct {
	t       *testing.T
	dataDir string
	url     string
	args    []string
	cmd     *exec.Cmd
	logs    *testpoll.Buffer
	exited  chan struct{}
	exitErr error
}

// logCount is how many log lines match re.
func (w *weirProc) logCount(re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(w.logs.String(), -1))
}

// startWeir runs weir serve on dataDir with extra flags and waits until it
// is ready. natsURL "" runs the embedded NATS (on a port of the test's
// choosing, so the test can read the stream).
func startWeir(t *testing.T, dataDir, natsURL string, extra ...string) *weirProc {
	t.Helper()
	w := launchWeir(t, dataDir, natsURL, extra...)
	w.waitReady()
	return w
}

// launchWeir is startWeir without waiting for readiness.
func launchWeir(t *testing.T, dataDir, natsURL string, extra ...string) *weirProc {
	t.Helper()
	w := &weirProc{t: t, dataDir: dataDir}
	port := freePort(t)
	w.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	w.args = []string{"serve", "--data-dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--grpc-listen", "127.0.0.1:0", "--admin-token", adminToken}
	if natsURL != "" {
		w.args = append(w.args, "--nats-url", natsURL)
	} else {
		w.args = append(w.args, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	w.args = append(w.args, extra...)
	w.start()
	t.Cleanup(w.kill)
	return w
}

func (w *weirProc) start() {
	w.t.Helper()
	cmd := exec.Command(weirBin, w.args...)
	cmd.Dir = repoRoot() // finds .cache/onnxruntime like make does
	w.logs = &testpoll.Buffer{}
	cmd.Stdout = w.logs
	cmd.Stderr = w.logs
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.cmd = cmd
	w.exited = make(chan struct{})
	go func() { w.exitErr = cmd.Wait(); close(w.exited) }()
}

func (w *weirProc) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

func (w *weirProc) waitReady() {
	w.t.Helper()
	testpoll.For(w.t, 60*time.Second, "weir ready at "+w.url, func() error {
		if !w.alive() {
			w.t.Fatalf("weir exited while starting: %v\n%s", w.exitErr, w.logs)
		}
		resp, err := http.Get(w.url + "/v2/health/ready")
		if err != nil {
			return lateError{err, w.logsAndExit}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return lateError{fmt.Errorf("ready answered %s", resp.Status), w.logsAndExit}
		}
		return nil
	})
}

// logsAndExit is weir's output so far and whether it is still running, to
// end a failed wait's message.
func (w *weirProc) logsAndExit() string {
	state := "still running"
	if !w.alive() {
		state = fmt.Sprintf("exited: %v", w.exitErr)
	}
	return fmt.Sprintf("; weir %s; logs:\n%s", state, w.logs)
}

// lateError is a wait's last state whose message ends with text read only
// when it is printed (a failed wait's end), for state too costly to read at
// each poll: a df run, a process's whole log.
type lateError struct {
	err  error
	late func() string
}

func (e lateError) Error() string { return e.err.Error() + e.late() }
func (e lateError) Unwrap() error { return e.err }

// kill9 kills the process the hard way and waits for it to be gone.
func (w *weirProc) kill9() {
	if w.cmd == nil {
		return
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
	w.cmd = nil
}

func (w *weirProc) kill() { w.kill9() }

// restart starts a new process with the same flags and data.
func (w *weirProc) restart() {
	w.t.Helper()
	w.kill9()
	w.start()
	w.waitReady()
}

func (w *weirProc) do(method, path string, body []byte) (int, []byte) {
	return w.doWithin(0, method, path, body)
}

// doWithin is do with a client timeout (0: none); a timeout answers 0.
func (w *weirProc) doWithin(timeout time.Duration, method, path string, body []byte) (int, []byte) {
	req, _ := http.NewRequest(method, w.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// pushModel uploads a small logistic regression as m@1.
func (w *weirProc) pushModel(name string) {
	w.t.Helper()
	b, err := onnx.LogisticRegression(name, []string{"a", "b", "c", "d"}, []float32{0.5, -0.2, 0.1, 1}, -1)
	if err != nil {
		w.t.Fatal(err)
	}
	if code, out := w.do("PUT", "/v1/models/"+name+"/versions/1", b); code != 201 {
		w.t.Fatalf("push model: %d %s", code, out)
	}
}

// metric reads one sample from /metrics (0 when absent).
func (w *weirProc) metric(name string) float64 {
	code, out := w.do("GET", "/metrics", nil)
	if code != 200 {
		return -1
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(l, name+" "), 64)
			return v
		}
	}
	return 0
}

// cpuSeconds is the process's user+system CPU time so far.
func (w *weirProc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		w.t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// idleCPU is the share of one core the process uses over d with no traffic.
func (w *weirProc) idleCPU(d time.Duration) float64 {
	c0, t0 := w.cpuSeconds(), time.Now()
	time.Sleep(d) // measuring a rate over a span, not waiting for an event
	return (w.cpuSeconds() - c0) / time.Since(t0).Seconds()
}

// load sends OIP inference requests to model m until stop is closed,
// at about rate requests a second.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	done       sync.WaitGroup
}

var inferBody = []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)

func startLoad(w *weirProc, model string, rate int) *load {
	l := &load{stop: make(chan struct{})}
	const workers = 4
	per := time.Second * workers / time.Duration(rate)
	for range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			tick := time.NewTicker(per)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				if code, _ := w.do("POST", "/v2/models/"+model+"/infer", inferBody); code == 200 {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) halt() {
	close(l.stop)
	l.done.Wait()
}

// readStream reads every event on weir.events.<route> (inside frames) and
// reports how many there are, how many distinct IDs, and how many are not
// valid JSON.
type streamCount struct{ total, distinct, invalid int }

func readStream(t *testing.T, url, route string) streamCount {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "WEIR_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"weir.events." + route}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c streamCount
	ids := map[string]bool{}
	for left := int(info.NumPending); left > 0; {
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			// A message is a frame of events (or one event, as written
			// before frames): count the events.
			err := monitor.EachEvent(m.Headers(), m.Data(), func(_ int, raw []byte) error {
				c.total++
				var ev struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(raw, &ev) != nil || ev.ID == "" {
					c.invalid++
					return nil
				}
				ids[ev.ID] = true
				return nil
			})
			if err != nil {
				c.total++
				c.invalid++ // a damaged frame: at least one event unreadable
			}
		}
		if got == 0 {
			t.Fatalf("stream read stalled with %d left", left)
		}
		left -= got
	}
	c.distinct = len(ids)
	return c
}

// figures logs a test's figures in one line, for the report.
func figures(t *testing.T, kv ...any) {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	t.Logf("FIGURES %s:%s", t.Name(), b.String())
}

// archivedRows counts the rows of every finished Parquet file under dir.
func archivedRows(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil
		}
		if pf, err := parquet.OpenFile(f, st.Size()); err == nil {
			n += int(pf.NumRows())
		}
		return nil
	})
	return n
}
