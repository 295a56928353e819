package grpcx

import "time"

// WithConnectionAge serves with a MaxConnectionAge and grace short enough for a
// test to wait for, every other setting as NewServer's.
func WithConnectionAge(age, grace time.Duration) ServerOption {
	return func(c *serverConfig) { c.maxAge, c.maxAgeGrace = age, grace }
}
