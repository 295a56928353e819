package cli

import (
	"bytes"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// batches hands out the given batches, then io.EOF.
func batches(bs ...[]*consolidationv1.ConsolidatedEmployee) func() ([]*consolidationv1.ConsolidatedEmployee, error) {
	return func() ([]*consolidationv1.ConsolidatedEmployee, error) {
		if len(bs) == 0 {
			return nil, io.EOF
		}
		b := bs[0]
		bs = bs[1:]
		return b, nil
	}
}

func TestCSVExportEscapesFormulas(t *testing.T) {
	t.Parallel()
	e := &consolidationv1.ConsolidatedEmployee{Rut: "12345678-5", NombreCompleto: `=HYPERLINK("http://x","a, b")`,
		Cargo: "+1", CentroCosto: "@SUM(A1)", LiquidoPagarCents: -150, TotalDescuentosCents: 150, ConsolidationId: 7,
		Concepts: []*consolidationv1.ConsolidatedConcept{
			{Code: "-2", Name: "\tcmd", ValueCents: -150, Type: "descuento", Source: "libro"},
			{Code: "B1", Name: "\rcmd", ValueCents: 0, Type: "haber", Source: "novedades"},
		}}
	var out bytes.Buffer
	n, err := writeCSVTo("", &out, batches([]*consolidationv1.ConsolidatedEmployee{e}))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Contains(t, out.String(), `"'=HYPERLINK(""http://x"",""a, b"")","'+1","'@SUM(A1)"`, "escaped cells are quoted")

	rows, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	require.Equal(t, exportHeader, rows[0])
	require.Equal(t, []string{"12345678-5", `'=HYPERLINK("http://x","a, b")`, "'+1", "'@SUM(A1)", "false", "false", "false",
		"0.00", "1.50", "-1.50", "0", "'-2", "'\tcmd", "descuento", "-1.50", "libro", "7"}, rows[1])
	require.Equal(t, "'\rcmd", rows[2][12])
	require.Equal(t, "-1.50", rows[2][9], "amounts are written as numbers, negative ones too")
}

func TestExportFilesArePrivate(t *testing.T) {
	t.Parallel()
	e := &consolidationv1.ConsolidatedEmployee{Rut: "12345678-5", NombreCompleto: "Ana"}
	dir := t.TempDir()
	csvFile, xlsxFile := filepath.Join(dir, "a.csv"), filepath.Join(dir, "a.xlsx")
	require.NoError(t, os.WriteFile(csvFile, []byte("old"), 0o644)) // an earlier export, readable by all
	_, err := writeCSVTo(csvFile, io.Discard, batches([]*consolidationv1.ConsolidatedEmployee{e}))
	require.NoError(t, err)
	_, err = writeXLSX(xlsxFile, batches([]*consolidationv1.ConsolidatedEmployee{e}))
	require.NoError(t, err)
	for _, f := range []string{csvFile, xlsxFile} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
}
