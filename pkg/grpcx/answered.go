package grpcx

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// answeredTrailer is the trailer a server sets on every answer of a call
// (MarkAnswered). A call that fails UNAVAILABLE after reaching its server and
// carries no such trailer was not answered by the handler: the connection broke
// under it, the server died holding the call (docs/lifecycle.md#how-a-run-ends: workers that die).
const answeredTrailer = "x-consolidation-answered"

// MarkAnswered marks the call of ctx as answered by its handler; a handler calls
// it first, so every status it returns carries the mark.
func MarkAnswered(ctx context.Context) error {
	return grpc.SetTrailer(ctx, metadata.Pairs(answeredTrailer, "1"))
}

// Answered reports whether a call's trailer (read with grpc.Trailer) carries the
// mark MarkAnswered sets.
func Answered(trailer metadata.MD) bool { return len(trailer.Get(answeredTrailer)) > 0 }
