package store

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/pgtest"
)

// domainConstants reads the values of every constant of type typeName declared in
// pkg/domain, from its source: the domain has no list of its words, and a word added
// there must be one the schema accepts.
func domainConstants(t *testing.T, typeName string) []string {
	t.Helper()
	files, err := filepath.Glob("../domain/*.go")
	require.NoError(t, err)
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		require.NoError(t, err)
		out = append(out, stringConstants(t, f, typeName)...)
	}
	require.NotEmpty(t, out, "no %s constants in pkg/domain", typeName)
	slices.Sort(out)
	return out
}

// stringConstants lists the values of the constants of type typeName in a file.
func stringConstants(t *testing.T, f *ast.File, typeName string) []string {
	t.Helper()
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if typ, ok := spec.Type.(*ast.Ident); ok && typ.Name == typeName {
			for _, v := range spec.Values {
				lit, ok := v.(*ast.BasicLit)
				require.True(t, ok && lit.Kind == token.STRING, "%s constant with a value that is not a string literal", typeName)
				s, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				out = append(out, s)
			}
		}
		return true
	})
	return out
}

var checkLiteral = regexp.MustCompile(`'((?:[^']|'')*)'::text`)

// checkValues reads the values a CHECK constraint on table.column allows.
func checkValues(t *testing.T, pool *pgxpool.Pool, table, column string) []string {
	t.Helper()
	var def string
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
		WHERE c.conrelid = $1::regclass AND c.contype = 'c' AND a.attname = $2`, table, column).Scan(&def))
	var out []string
	for _, m := range checkLiteral.FindAllStringSubmatch(def, -1) {
		out = append(out, m[1])
	}
	require.NotEmpty(t, out, "no values in %s", def)
	slices.Sort(out)
	return out
}

func requireCheckViolation(t *testing.T, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23514", pgErr.Code, pgErr.Message)
}

func TestChunkStatusVocabulary(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(t.Context(), `
		INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (7, 3, 2026, 'consolidando_datos');
		INSERT INTO consolidation_run (id, cierre_id, mode, policy, chunk_size, previous_estado, estado, deadline)
		VALUES (1, 7, 'full', 'seed', 2, 'verificado_sin_discrepancias', 'consolidando_datos', now())`)
	require.NoError(t, err)
	statuses := domainConstants(t, "ChunkStatus")

	t.Run("CheckAllowsExactlyTheDomainsStatuses", func(t *testing.T) {
		require.Equal(t, statuses, checkValues(t, pool, "consolidation_chunk", "status"))
	})
	t.Run("EveryStatusAccepted", func(t *testing.T) {
		for i, s := range statuses {
			_, err := pool.Exec(t.Context(), `INSERT INTO consolidation_chunk (run_id, chunk_index, first_employee_id,
				last_employee_id, employees, status) VALUES (1, $1, 1, 1, 1, $2)`, i, domain.ChunkStatus(s))
			require.NoError(t, err, s)
		}
	})
	t.Run("UnknownStatusRefused", func(t *testing.T) {
		_, err := pool.Exec(t.Context(), `INSERT INTO consolidation_chunk (run_id, chunk_index, first_employee_id,
			last_employee_id, employees, status) VALUES (1, 99, 1, 1, 1, 'done')`)
		requireCheckViolation(t, err)
	})
	t.Run("DefaultIsPending", func(t *testing.T) {
		var def string
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT column_default FROM information_schema.columns
			WHERE table_name = 'consolidation_chunk' AND column_name = 'status'`).Scan(&def))
		require.Equal(t, "'"+string(domain.ChunkPending)+"'::text", def)
	})
	t.Run("EveryStatusIsASQLWord", func(t *testing.T) {
		for _, s := range statuses {
			require.Equal(t, sqlLiteral(s), sqlf("{"+s+"}"))
		}
	})
}

func TestModeVocabulary(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	_, err := pool.Exec(t.Context(), `INSERT INTO nomina_cierrenomina (id, mes, anno, estado) VALUES (7, 3, 2026, 'consolidando_datos')`)
	require.NoError(t, err)
	modes := domainConstants(t, "Mode")
	insertRun := func(mode string) error {
		// Finished, so the one-unfinished-run index lets them all in.
		_, err := pool.Exec(t.Context(), `INSERT INTO consolidation_run (cierre_id, mode, policy, chunk_size,
			previous_estado, estado, deadline, finished_at)
			VALUES (7, $1, 'seed', 2, 'verificado_sin_discrepancias', 'datos_consolidados', now(), now())`, mode)
		return err
	}

	t.Run("CheckAllowsExactlyTheDomainsModes", func(t *testing.T) {
		require.Equal(t, modes, checkValues(t, pool, "consolidation_run", "mode"))
	})
	t.Run("EveryModeAccepted", func(t *testing.T) {
		for _, m := range modes {
			require.NoError(t, insertRun(m), m)
		}
	})
	t.Run("UnknownModeRefused", func(t *testing.T) {
		requireCheckViolation(t, insertRun("partial"))
	})
}

func TestSQLF(t *testing.T) {
	t.Parallel()

	t.Run("ExpandsEveryWordFromTheDomain", func(t *testing.T) {
		t.Parallel()
		require.Equal(t,
			"'pending' 'running' 'succeeded' 'failed' 'committed' 'consolidando_datos'",
			sqlf("{pending} {running} {succeeded} {failed} {committed} {consolidando}"))
		require.Equal(t, sqlLiteral(domain.ChunkSucceeded), sqlf("{succeeded}"))
		require.Equal(t, sqlLiteral(domain.OutcomeCommitted), sqlf("{committed}"))
		require.Equal(t, sqlLiteral(domain.EstadoConsolidando), sqlf("{consolidando}"))
	})
	t.Run("LeavesOtherSQLAlone", func(t *testing.T) {
		t.Parallel()
		const q = "SELECT id FROM consolidation_run WHERE id = $1 AND note <> '}' AND tags <> '{}' AND ids <> '{1,2}'"
		require.Equal(t, q, sqlf(q))
	})
	t.Run("PanicsOnUnknownWord", func(t *testing.T) {
		t.Parallel()
		require.PanicsWithValue(t, "store: unknown domain word in SQL: {archived}", func() {
			sqlf("UPDATE consolidation_chunk SET status = {archived}")
		})
	})
	t.Run("QuotesLiterals", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "'it''s'", sqlLiteral("it's"))
	})
}
