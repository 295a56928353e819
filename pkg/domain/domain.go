// Package domain holds the service's vocabulary as typed values: the estados of a
// closing, the modes and chunk policies of a run, the statuses of a chunk in the
// ledger and the outcomes of a dispatch attempt. The store maps rows into these
// types, the engine decides with them, and the gRPC edges convert them; no bare
// string crosses a package or a process.
package domain
