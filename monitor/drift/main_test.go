package drift

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts has an owner that stops it: none may
// outlive the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
