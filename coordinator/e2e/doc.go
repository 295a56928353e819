// Package e2e holds the end-to-end tests: real coordinator and worker processes,
// built from this workspace, talking gRPC over loopback sockets to each other and
// to a real PostgreSQL and Redis that the test harness starts.
package e2e
