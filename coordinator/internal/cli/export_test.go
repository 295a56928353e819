package cli

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"

	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// batches returns a next that hands out one employee per call, then fails with
// fail (io.EOF: the end of the export).
func batches(n int, fail error) func() ([]*consolidationv1.ConsolidatedEmployee, error) {
	i := 0
	return func() ([]*consolidationv1.ConsolidatedEmployee, error) {
		if i == n {
			return nil, fail
		}
		i++
		return []*consolidationv1.ConsolidatedEmployee{{Rut: strings.Repeat("1", i) + "-9", TotalHaberesCents: 123456,
			Concepts: []*consolidationv1.ConsolidatedConcept{{Code: "SB", ValueCents: 123456}}}}, nil
	}
}

// TestExportIsWrittenWholeOrNotAtAll: an export that fails mid-stream leaves no
// file (and an earlier file of the name as it was), and no temporary file
// behind; one that ends is renamed into place, readable by its owner only.
func TestExportIsWrittenWholeOrNotAtAll(t *testing.T) {
	t.Parallel()
	broken := errors.New("the stream broke")
	writers := map[string]func(file string, next func() ([]*consolidationv1.ConsolidatedEmployee, error)) (int, error){
		"csv": func(file string, next func() ([]*consolidationv1.ConsolidatedEmployee, error)) (int, error) {
			return writeCSVTo(file, io.Discard, next)
		},
		"xlsx": writeXLSX,
	}
	for format, write := range writers {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "cierre."+format)

			n, err := write(file, batches(3, broken))
			require.ErrorIs(t, err, broken)
			require.Equal(t, 3, n, "three employees were written before the failure")
			require.NoFileExists(t, file)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "no temporary file is left")

			require.NoError(t, os.WriteFile(file, []byte("an earlier export"), 0o600))
			_, err = write(file, batches(2, broken))
			require.ErrorIs(t, err, broken)
			got, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Equal(t, "an earlier export", string(got), "a failed export leaves the earlier file as it was")

			n, err = write(file, batches(4, io.EOF))
			require.NoError(t, err)
			require.Equal(t, 4, n)
			info, err := os.Stat(file)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
			entries, err = os.ReadDir(dir)
			require.NoError(t, err)
			require.Len(t, entries, 1, "only the export")
		})
	}
	// The CSV itself: the header, then a row per concept line.
	var out strings.Builder
	n, err := writeCSVTo("", &out, batches(1, io.EOF))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, strings.Join(exportHeader, ",")+"\n1-9,,,,false,false,false,1234.56,0.00,0.00,0,SB,,,1234.56,,0\n", out.String())
}

// TestExportShowsEveryField: every field of ConsolidatedEmployee and
// ConsolidatedConcept is a column of the export or left out with a reason, and
// each column names a field that exists: a field added to the proto and not to
// the export fails here.
func TestExportShowsEveryField(t *testing.T) {
	t.Parallel()
	shown := map[bool]map[protoreflect.Name]bool{false: {}, true: {}}
	for _, col := range exportColumns {
		shown[col.ofConcept][col.field] = true
	}
	for ofConcept, fields := range map[bool]protoreflect.FieldDescriptors{
		false: (&employee{}).ProtoReflect().Descriptor().Fields(),
		true:  (&concept{}).ProtoReflect().Descriptor().Fields(),
	} {
		for i := range fields.Len() {
			name := fields.Get(i).Name()
			_, left := notExported[name]
			require.True(t, shown[ofConcept][name] != (left && !ofConcept), "%s: a column, or in notExported", fields.Get(i).FullName())
			delete(shown[ofConcept], name)
		}
		require.Empty(t, shown[ofConcept], "columns of fields that do not exist")
	}
}

func batchesOf(bs ...[]*consolidationv1.ConsolidatedEmployee) func() ([]*consolidationv1.ConsolidatedEmployee, error) {
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
	n, err := writeCSVTo("", &out, batchesOf([]*consolidationv1.ConsolidatedEmployee{e}))
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
	_, err := writeCSVTo(csvFile, io.Discard, batchesOf([]*consolidationv1.ConsolidatedEmployee{e}))
	require.NoError(t, err)
	_, err = writeXLSX(xlsxFile, batchesOf([]*consolidationv1.ConsolidatedEmployee{e}))
	require.NoError(t, err)
	for _, f := range []string{csvFile, xlsxFile} {
		st, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
}
