package engine

import "context"

// DefaultReadPoolConns is the size of the coordinator's pool for its read RPCs
// (DATABASE_READ_MAX_CONNS): Explain, Export, List, Get and validate_only, apart
// from the pool that drives runs.
const DefaultReadPoolConns = 4

type readingKey struct{}

// ForReading marks ctx as a read RPC's: the engine's database calls made with it
// use the read pool given to NewEngine, not the pool that drives runs.
func ForReading(ctx context.Context) context.Context {
	return context.WithValue(ctx, readingKey{}, true)
}

func isReading(ctx context.Context) bool {
	r, _ := ctx.Value(readingKey{}).(bool)
	return r
}
