//go:build !race

package gateway_test

// raceBuild says the tests run under the race detector.
const raceBuild = false
