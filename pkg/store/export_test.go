package store

import "context"

// SQLFindPrevious, SQLPreviousConcepts and SQLSavePrevious are the statements a
// chunk commit finds, reads and saves the previous rows with, for the test of
// their plans.
var (
	SQLFindPrevious     = sqlFindPrevious
	SQLSavePrevious     = sqlSavePrevious
	SQLPreviousConcepts = sqlPreviousConcepts
)

// FailChunk is FailChunkWith for a chunk no worker died on: the ledger tests' way
// to fail one.
func FailChunk(ctx context.Context, q Querier, runID, epoch int64, index int, token int64, errText string) (bool, error) {
	return FailChunkWith(ctx, q, runID, epoch, index, token, ChunkFailure{Error: errText})
}
