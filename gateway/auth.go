package gateway

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/weirhq/weir/internal/weirerr"
)

// TokenFile is where a generated admin token is kept under the data dir.
const TokenFile = "admin-token"

// EnsureAdminToken returns the token to use: given if set, else the one in
// <dataDir>/admin-token, generating it (mode 0600) on first start. created
// says whether it was just generated.
func EnsureAdminToken(given, dataDir string) (token string, path string, created bool, err error) {
	if given != "" {
		return given, "", false, nil
	}
	path = filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, path, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", path, false, fmt.Errorf("read admin token: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", path, false, err
	}
	token = hex.EncodeToString(buf)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", path, false, err
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", path, false, fmt.Errorf("write admin token: %w", err)
	}
	return token, path, true, nil
}

// requireToken admits requests bearing one of the accepted tokens.
func requireToken(what string, accepted func(string) bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		h := c.Get(fiber.HeaderAuthorization)
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return weirerr.Unauthorizedf("%s needs an Authorization: Bearer <token> header", what)
		}
		if !accepted(tok) {
			return weirerr.Unauthorizedf("the bearer token is not valid for %s", what)
		}
		return c.Next()
	}
}

func equalToken(want string) func(string) bool {
	return func(got string) bool {
		return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
}

// loadAPIKeys reads one key per line (blank lines and # comments skipped).
func loadAPIKeys(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	keys := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys[line] = true
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("api keys file %s holds no key", path)
	}
	return keys, sc.Err()
}
