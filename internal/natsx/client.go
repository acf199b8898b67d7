package natsx

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ClientOptions say how to reach and authenticate to NATS. URL is one
// server or several separated by commas; each may carry credentials
// (nats://user:pass@host:4222, or nats://token@host:4222). The other
// fields are files, each optional.
type ClientOptions struct {
	URL       string
	Name      string // connection name, shown by the server
	CredsFile string // NATS JWT + nkey seed (.creds), --nats-creds
	NKeyFile  string // nkey seed, --nats-nkey
	TLSCA     string // CA bundle that signed the servers' certificates, --nats-tls-ca
	TLSCert   string // client certificate (mutual TLS), --nats-tls-cert
	TLSKey    string // its key, --nats-tls-key
	// WaitForServer makes Dial return a connection that keeps trying when
	// no server can be reached yet, instead of an error: a gateway started
	// during an outage stays up (nats.RetryOnFailedConnect). A server that
	// answers and refuses (credentials, TLS) is still an error.
	WaitForServer bool
	// Logger, when set, hears of the connection being lost and found again
	// (and with which server).
	Logger *slog.Logger
}

// Validate checks what can be checked before dialing, naming the option
// that is wrong.
func (o ClientOptions) Validate() error {
	if strings.TrimSpace(o.URL) == "" {
		return errors.New("nats url is empty, want nats://[user:pass@]host:port[,...]")
	}
	for _, s := range strings.Split(o.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Host == "" {
			return fmt.Errorf("nats url %q: want nats://[user:pass@]host:port", redact(s))
		}
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together: give both or neither")
	}
	if o.CredsFile != "" && o.NKeyFile != "" {
		return errors.New("--nats-creds and --nats-nkey are two ways to authenticate: give one")
	}
	for flag, f := range map[string]string{"--nats-creds": o.CredsFile, "--nats-nkey": o.NKeyFile,
		"--nats-tls-ca": o.TLSCA, "--nats-tls-cert": o.TLSCert, "--nats-tls-key": o.TLSKey} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return nil
}

// PingInterval and MaxPingsOutstanding make a client notice a server that
// stopped answering (a frozen process or host: its socket stays open, so
// nothing else tells) within PingInterval × (MaxPingsOutstanding+1), 6s,
// and move to another server. nats.go's defaults take minutes.
const (
	PingInterval        = 2 * time.Second
	MaxPingsOutstanding = 2
)

// Dial connects with reconnects forever, which is what a long-running
// gateway wants: NATS going away must not end the process, and with several
// servers (or servers the cluster announces) it moves to another one, also
// away from one that froze (PingInterval).
func Dial(o ClientOptions) (*nats.Conn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOutstanding),
	}
	// Credentials in the first URL that has some also go to servers the
	// cluster announces later, which arrive without them.
	for _, s := range strings.Split(o.URL, ",") {
		u, _ := url.Parse(strings.TrimSpace(s))
		if u == nil || u.User == nil {
			continue
		}
		if p, ok := u.User.Password(); ok {
			opts = append(opts, nats.UserInfo(u.User.Username(), p))
		} else {
			opts = append(opts, nats.Token(u.User.Username()))
		}
		break
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if log := o.Logger; log != nil {
		opts = append(opts, nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // closed on purpose
			}
			log.Warn("nats: connection lost, reconnecting", "server", nc.ConnectedServerName(), "err", err)
		}), nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: connected", "server", nc.ConnectedServerName(), "url", redact(nc.ConnectedUrlRedacted()))
		}))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil && o.WaitForServer && unreachable(err) {
		if o.Logger != nil {
			o.Logger.Warn("nats: no server can be reached yet: waiting for one", "nats", redact(o.URL), "err", err)
		}
		nc, err = nats.Connect(o.URL, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", redact(o.URL), err)
	}
	return nc, nil
}

// unreachable says err means no server could be reached (refused, timed
// out, no route), not that one answered and refused.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.As(err, &ne)
}

// Connect dials url (credentials in the URL) as Dial does.
func Connect(url, name string) (*nats.Conn, error) {
	return Dial(ClientOptions{URL: url, Name: name})
}

// State is the connection's state in one word, for health answers and logs.
func State(nc *nats.Conn) string {
	if nc == nil {
		return "none"
	}
	return strings.ToLower(nc.Status().String())
}

// redact hides passwords and tokens in URLs before they reach an error or a
// log line.
func redact(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// Redact is redact for callers that print a NATS URL.
func Redact(s string) string { return redact(s) }

// NewSecret returns 32 random bytes, hex.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// URLFile is the name, inside a gateway's data dir, of the file holding the
// embedded server's client URL with its credentials.
const URLFile = "nats-url"

// ReadURLFile returns the URL kept in path.
func ReadURLFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty, want a NATS URL", path)
	}
	return s, nil
}

// WriteURLFile writes url into path, readable by its owner only.
func WriteURLFile(path, url string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(url+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// URLUser returns the user and password a URL carries ("" when none).
func URLUser(s string) (user, pass string) {
	u, err := url.Parse(strings.TrimSpace(strings.Split(s, ",")[0]))
	if err != nil || u.User == nil {
		return "", ""
	}
	p, _ := u.User.Password()
	return u.User.Username(), p
}
