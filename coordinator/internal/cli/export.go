package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"

	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// The export is one flat table, one row per concept line of a consolidated
// employee, the employee's columns repeated on each of its lines (an employee
// without lines has one row with empty concept columns); in RUT order, then code.
var exportHeader = []string{"rut", "nombre_completo", "cargo", "centro_costo", "es_ingreso", "es_finiquito",
	"tiene_ausentismo", "total_haberes", "total_descuentos", "liquido_pagar", "discrepancias_resueltas",
	"codigo_concepto", "nombre_concepto", "tipo_concepto", "valor", "fuente_dato", "consolidation_id"}

// exportAmountColumns are the columns of exportHeader that hold amounts.
var exportAmountColumns = map[int]bool{7: true, 8: true, 9: true, 14: true}

// ExportSheet is the name of the xlsx export's one sheet.
const ExportSheet = "consolidado"

// maxXLSXRows is a sheet's limit of rows, less the header.
const maxXLSXRows = 1<<20 - 1

// exportRows turns one employee into its rows of the table: amounts as numeric
// text with two decimals, made from integer cents.
func exportRows(e *consolidationv1.ConsolidatedEmployee) [][]string {
	emp := []string{e.GetRut(), e.GetNombreCompleto(), e.GetCargo(), e.GetCentroCosto(),
		strconv.FormatBool(e.GetEsIngreso()), strconv.FormatBool(e.GetEsFiniquito()), strconv.FormatBool(e.GetTieneAusentismo()),
		money.Cents(e.GetTotalHaberesCents()).String(), money.Cents(e.GetTotalDescuentosCents()).String(),
		money.Cents(e.GetLiquidoPagarCents()).String(), strconv.Itoa(int(e.GetDiscrepanciasResueltas()))}
	run := strconv.FormatInt(e.GetConsolidationId(), 10)
	if len(e.GetConcepts()) == 0 {
		return [][]string{append(append(emp[:len(emp):len(emp)], "", "", "", "", ""), run)}
	}
	rows := make([][]string, 0, len(e.GetConcepts()))
	for _, c := range e.GetConcepts() {
		row := append(emp[:len(emp):len(emp)], c.GetCode(), c.GetName(), c.GetType(), money.Cents(c.GetValueCents()).String(),
			c.GetSource(), run)
		rows = append(rows, row)
	}
	return rows
}

// export writes a closing's consolidated rows, streamed by ExportConsolidation, as
// CSV or xlsx.
func export(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export")
	conn := addConnFlags(fs)
	closing := fs.Int64("closing", 0, "closing id")
	format := fs.String("format", "csv", "csv or xlsx")
	out := fs.String("o", "", "output file (default: standard output for csv; required for xlsx)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *closing <= 0 {
		return errors.New("-closing N is required")
	}
	if *format != "csv" && *format != "xlsx" {
		return fmt.Errorf("-format %q: want csv or xlsx", *format)
	}
	if *format == "xlsx" && *out == "" {
		return errors.New("-format xlsx needs -o FILE")
	}
	client, closeConn, err := conn.dial()
	if err != nil {
		return err
	}
	defer closeConn()
	stream, err := client.ExportConsolidation(ctx, &consolidationv1.ExportConsolidationRequest{ClosingId: *closing})
	if err != nil {
		return err
	}
	next := func() ([]*consolidationv1.ConsolidatedEmployee, error) {
		msg, err := stream.Recv()
		return msg.GetEmployees(), err
	}
	var n int
	if *format == "xlsx" {
		n, err = writeXLSX(*out, next)
	} else {
		n, err = writeCSVTo(*out, stdout, next)
	}
	if err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(stderr, "%d employees of closing %d written to %s\n", n, *closing, *out)
	}
	return nil
}

// writeCSVTo writes the table as CSV to file (created 0600: it holds personal
// data), or to stdout when file is "". It returns the employees written; next
// returns io.EOF after the last batch.
func writeCSVTo(file string, stdout io.Writer, next func() ([]*consolidationv1.ConsolidatedEmployee, error)) (int, error) {
	w := stdout
	if file != "" {
		f, err := createPrivate(file)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	writeCSVRow(bw, exportHeader)
	n, err := eachEmployee(next, func(e *consolidationv1.ConsolidatedEmployee) error {
		for _, row := range exportRows(e) {
			writeCSVRow(bw, row)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, err
	}
	if f, ok := w.(*os.File); ok && file != "" {
		return n, f.Close()
	}
	return n, nil
}

// writeCSVRow writes one record as RFC 4180 CSV, each text cell made safe to
// open in a spreadsheet (OWASP, "CSV Injection"): a cell that starts with =, +,
// -, @, a tab or a carriage return would run as a formula, so it is written with
// a leading single quote, and quoted. The amount columns are exempt: they are
// numeric text the export itself makes from cents, and a negative amount starts
// with -. Errors are the buffered writer's, returned by its Flush.
func writeCSVRow(w *bufio.Writer, row []string) {
	for i, cell := range row {
		if i > 0 {
			w.WriteByte(',')
		}
		quote := strings.ContainsAny(cell, ",\"\r\n") || strings.HasPrefix(cell, " ")
		if !exportAmountColumns[i] && cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			cell, quote = "'"+cell, true
		}
		if quote {
			w.WriteString(`"` + strings.ReplaceAll(cell, `"`, `""`) + `"`)
		} else {
			w.WriteString(cell)
		}
	}
	w.WriteByte('\n')
}

// createPrivate creates (or truncates) file readable and writable by its owner
// only, also when it existed with a wider mode.
func createPrivate(file string) (*os.File, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeXLSX writes the table as one sheet of an xlsx file (created 0600): amounts
// are numeric cells with the 0.00 format, their values read from the exact
// numeric text (at most 12 significant digits, which a spreadsheet's double holds
// exactly and writes back as the same text), never computed in floating point.
// Text goes in string cells, which a spreadsheet never evaluates as formulas.
func writeXLSX(file string, next func() ([]*consolidationv1.ConsolidatedEmployee, error)) (int, error) {
	f := excelize.NewFile()
	defer f.Close()
	if err := f.SetSheetName("Sheet1", ExportSheet); err != nil {
		return 0, err
	}
	sw, err := f.NewStreamWriter(ExportSheet)
	if err != nil {
		return 0, err
	}
	amount, err := f.NewStyle(&excelize.Style{NumFmt: 2}) // 0.00
	if err != nil {
		return 0, err
	}
	header := make([]any, len(exportHeader))
	for i, h := range exportHeader {
		header[i] = h
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return 0, err
	}
	if err := sw.SetRow("A1", header); err != nil {
		return 0, err
	}
	rowNum := 1
	n, err := eachEmployee(next, func(e *consolidationv1.ConsolidatedEmployee) error {
		for _, row := range exportRows(e) {
			if rowNum > maxXLSXRows {
				return fmt.Errorf("the export has more than %d rows, a sheet's limit: use -format csv", maxXLSXRows)
			}
			rowNum++
			cells := make([]any, len(row))
			for i, v := range row {
				cells[i] = v
				if exportAmountColumns[i] && v != "" {
					x, err := strconv.ParseFloat(v, 64) // the exact text's value, no arithmetic
					if err != nil {
						return err
					}
					cells[i] = excelize.Cell{StyleID: amount, Value: x}
				}
			}
			cell, _ := excelize.CoordinatesToCellName(1, rowNum)
			if err := sw.SetRow(cell, cells); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := sw.Flush(); err != nil {
		return n, err
	}
	out, err := createPrivate(file)
	if err != nil {
		return n, err
	}
	defer out.Close()
	if _, err := f.WriteTo(out); err != nil {
		return n, err
	}
	return n, out.Close()
}

// eachEmployee hands every employee of the batches next returns to fn, until next
// says io.EOF, and counts them.
func eachEmployee(next func() ([]*consolidationv1.ConsolidatedEmployee, error), fn func(*consolidationv1.ConsolidatedEmployee) error) (int, error) {
	n := 0
	for {
		batch, err := next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return n, err
			}
			n++
		}
	}
}
