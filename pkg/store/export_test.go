package store

// SQLSavePrevious is the statement a chunk commit saves the previous rows with, for
// the test of its plan.
const SQLSavePrevious = sqlSavePrevious
