package store

// SQLFindPrevious and SQLSavePrevious are the statements a chunk commit finds and
// saves the previous rows with, for the test of their plans.
const (
	SQLFindPrevious = sqlFindPrevious
	SQLSavePrevious = sqlSavePrevious
)
