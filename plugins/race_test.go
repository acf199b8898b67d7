//go:build race

package plugins

// raceBuild says the tests run under the race detector.
const raceBuild = true
