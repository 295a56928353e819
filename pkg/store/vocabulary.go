package store

import (
	"regexp"
	"strings"

	"github.com/nominacl/consolidation/pkg/domain"
)

// sqlWords spells the domain's words as SQL literals, so a status written in a
// query comes from the same constant as the one in Go: a query names them
// {pending}, {running}, {succeeded}, {failed}, {split}, {cancelled}, {committed},
// {consolidando}.
var sqlWords = strings.NewReplacer(
	"{pending}", sqlLiteral(domain.ChunkPending),
	"{running}", sqlLiteral(domain.ChunkRunning),
	"{succeeded}", sqlLiteral(domain.ChunkSucceeded),
	"{failed}", sqlLiteral(domain.ChunkFailed),
	"{split}", sqlLiteral(domain.ChunkSplit),
	"{cancelled}", sqlLiteral(domain.ChunkCancelled),
	"{committed}", sqlLiteral(domain.OutcomeCommitted),
	"{abandoned}", sqlLiteral(domain.OutcomeAbandoned),
	"{consolidando}", sqlLiteral(domain.EstadoConsolidando),
)

// sqlf expands the domain words of a query; it runs once per query, when the
// package's SQL variables are initialized.
func sqlf(query string) string {
	out := sqlWords.Replace(query)
	if w := unknownWord.FindString(out); w != "" {
		panic("store: unknown domain word in SQL: " + w)
	}
	return out
}

// unknownWord finds a {word} left unexpanded; an array literal such as '{}' or
// '{1,2}' is not one.
var unknownWord = regexp.MustCompile(`\{[a-z_]+\}`)

func sqlLiteral[T ~string](v T) string {
	return "'" + strings.ReplaceAll(string(v), "'", "''") + "'"
}
