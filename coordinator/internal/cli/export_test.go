package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
