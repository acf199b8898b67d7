//go:build race

package gateway_test

// raceBuild says the tests run under the race detector, whose sync.Pool
// drops pooled buffers at random: allocation bounds allow for it.
const raceBuild = true
