package gateway

import (
	"testing"

	"github.com/weirhq/weir/internal/leakcheck"
)

// Every goroutine a test starts has an owner that stops it: none may
// outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m) }
