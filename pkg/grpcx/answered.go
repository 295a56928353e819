package grpcx

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// answeredTrailer is the trailer a server sets on every answer of a call
// (MarkAnswered). A call that fails UNAVAILABLE after reaching its server and
// carries no such trailer was not answered by the handler: the connection broke
// under it (docs/lifecycle.md#how-a-run-ends: workers that die).
const answeredTrailer = "x-consolidation-answered"

// heldHeader is the header a worker sends the moment it takes one of its slots
// for a chunk (MarkHeld). A call whose connection broke without an answer died
// with its worker only if the worker held the chunk; without the header the
// worker died before it took the chunk on (waiting for a slot another chunk held,
// say), and the chunk is not to blame (docs/lifecycle.md#how-a-run-ends).
const heldHeader = "x-consolidation-held"

// MarkAnswered marks the call of ctx as answered by its handler; a handler calls
// it first, so every status it returns carries the mark.
func MarkAnswered(ctx context.Context) error {
	return grpc.SetTrailer(ctx, metadata.Pairs(answeredTrailer, "1"))
}

// Answered reports whether a call's trailer (read with grpc.Trailer) carries the
// mark MarkAnswered sets.
func Answered(trailer metadata.MD) bool { return len(trailer.Get(answeredTrailer)) > 0 }

// MarkHeld tells the caller of ctx's call that the handler holds its work now:
// it sends the call's header. Call it once, when the work begins. The header is
// queued, not flushed: a server killed within microseconds of the call loses it,
// and its caller takes the call for one the server never took on.
func MarkHeld(ctx context.Context) error {
	return grpc.SendHeader(ctx, metadata.Pairs(heldHeader, "1"))
}

// Held reports whether a call's header (read with grpc.Header) carries the mark
// MarkHeld sends. gRPC keeps a header that arrived even when the call failed
// after it.
func Held(header metadata.MD) bool { return len(header.Get(heldHeader)) > 0 }
