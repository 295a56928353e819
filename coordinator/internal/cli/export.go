package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/xuri/excelize/v2"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nominacl/consolidation/pkg/money"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// The export is one flat table, one row per concept line of a consolidated
// employee, the employee's columns repeated on each of its lines (an employee
// without lines has one row with empty concept columns); in RUT order, then code.
// exportColumns is that table's one definition: header, the proto field each
// column shows, and its text. Every field of ConsolidatedEmployee and
// ConsolidatedConcept is a column or in notExported (TestExportShowsEveryField).
var exportColumns = []exportColumn{
	{header: "rut", field: "rut", text: func(e *employee, _ *concept) string { return e.GetRut() }},
	{header: "nombre_completo", field: "nombre_completo", text: func(e *employee, _ *concept) string { return e.GetNombreCompleto() }},
	{header: "cargo", field: "cargo", text: func(e *employee, _ *concept) string { return e.GetCargo() }},
	{header: "centro_costo", field: "centro_costo", text: func(e *employee, _ *concept) string { return e.GetCentroCosto() }},
	{header: "es_ingreso", field: "es_ingreso", text: func(e *employee, _ *concept) string { return strconv.FormatBool(e.GetEsIngreso()) }},
	{header: "es_finiquito", field: "es_finiquito", text: func(e *employee, _ *concept) string { return strconv.FormatBool(e.GetEsFiniquito()) }},
	{header: "tiene_ausentismo", field: "tiene_ausentismo", text: func(e *employee, _ *concept) string {
		return strconv.FormatBool(e.GetTieneAusentismo())
	}},
	{header: "total_haberes", field: "total_haberes_cents", amount: true, text: func(e *employee, _ *concept) string {
		return money.Cents(e.GetTotalHaberesCents()).String()
	}},
	{header: "total_descuentos", field: "total_descuentos_cents", amount: true, text: func(e *employee, _ *concept) string {
		return money.Cents(e.GetTotalDescuentosCents()).String()
	}},
	{header: "liquido_pagar", field: "liquido_pagar_cents", amount: true, text: func(e *employee, _ *concept) string {
		return money.Cents(e.GetLiquidoPagarCents()).String()
	}},
	{header: "discrepancias_resueltas", field: "discrepancias_resueltas", text: func(e *employee, _ *concept) string {
		return strconv.Itoa(int(e.GetDiscrepanciasResueltas()))
	}},
	{header: "codigo_concepto", field: "code", ofConcept: true, text: func(_ *employee, c *concept) string { return c.GetCode() }},
	{header: "nombre_concepto", field: "name", ofConcept: true, text: func(_ *employee, c *concept) string { return c.GetName() }},
	{header: "tipo_concepto", field: "type", ofConcept: true, text: func(_ *employee, c *concept) string { return c.GetType() }},
	{header: "valor", field: "value_cents", ofConcept: true, amount: true, text: func(_ *employee, c *concept) string {
		return money.Cents(c.GetValueCents()).String()
	}},
	{header: "fuente_dato", field: "source", ofConcept: true, text: func(_ *employee, c *concept) string { return c.GetSource() }},
	{header: "consolidation_id", field: "consolidation_id", text: func(e *employee, _ *concept) string {
		return strconv.FormatInt(e.GetConsolidationId(), 10)
	}},
}

// notExported are the fields of ConsolidatedEmployee the export leaves out, and why.
var notExported = map[protoreflect.Name]string{
	"id":                 "the row's id means nothing outside the database",
	"employee_id":        "the libro row's id, likewise; the RUT names the employee",
	"fuentes_utilizadas": "how the record was made: ExplainEmployee tells it",
	"reglas_aplicadas":   "likewise",
	"concepts":           "each concept line is a row",
}

type (
	employee = consolidationv1.ConsolidatedEmployee
	concept  = consolidationv1.ConsolidatedConcept
)

// exportColumn is one column of the export.
type exportColumn struct {
	header string
	// field is the ConsolidatedEmployee field (ConsolidatedConcept's when
	// ofConcept) the column shows.
	field     protoreflect.Name
	ofConcept bool
	// amount: the text is an amount, numeric text with two decimals made from
	// integer cents (a numeric cell in xlsx).
	amount bool
	// text is the cell's text; c is nil for an employee without lines, whose
	// concept columns are empty.
	text func(e *employee, c *concept) string
}

// exportHeader is the export's header row.
var exportHeader = func() []string {
	h := make([]string, len(exportColumns))
	for i, col := range exportColumns {
		h[i] = col.header
	}
	return h
}()

// ExportSheet is the name of the xlsx export's one sheet.
const ExportSheet = "consolidado"

// maxXLSXRows is a sheet's limit of rows, less the header.
const maxXLSXRows = 1<<20 - 1

// exportRows turns one employee into its rows of the table: amounts as numeric
// text with two decimals, made from integer cents.
func exportRows(e *employee) [][]string {
	emp := make([]string, len(exportColumns)) // the employee's cells, once
	for j, col := range exportColumns {
		if !col.ofConcept {
			emp[j] = col.text(e, nil)
		}
	}
	if len(e.GetConcepts()) == 0 {
		return [][]string{emp}
	}
	rows := make([][]string, len(e.GetConcepts()))
	for i, c := range e.GetConcepts() {
		row := slices.Clone(emp)
		for j, col := range exportColumns {
			if col.ofConcept {
				row[j] = col.text(e, c)
			}
		}
		rows[i] = row
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
		return usageErrorf("-closing N is required")
	}
	if *format != "csv" && *format != "xlsx" {
		return usageErrorf("-format %q: want csv or xlsx", *format)
	}
	if *format == "xlsx" && *out == "" {
		return usageErrorf("-format xlsx needs -o FILE")
	}
	client, closeConn, err := conn.dial(ctx)
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
	if file == "" {
		return writeCSV(stdout, next)
	}
	var n int
	err := writeAtomically(file, func(w io.Writer) (err error) {
		n, err = writeCSV(w, next)
		return err
	})
	return n, err
}

func writeCSV(w io.Writer, next func() ([]*consolidationv1.ConsolidatedEmployee, error)) (int, error) {
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
	return n, bw.Flush()
}

// writeAtomically writes file with write into a temporary file of file's
// directory, renamed to file only once write has succeeded and the bytes are on
// disk: an export that fails mid-stream (the coordinator goes away, a run starts)
// leaves no partial file, and a file of that name from before as it was. The
// file is readable by its owner only (0600): it holds personal data.
func writeAtomically(file string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.partial")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
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
		if !exportColumns[i].amount && cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
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
				if exportColumns[i].amount && v != "" {
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
	return n, writeAtomically(file, func(w io.Writer) error { return f.Write(w) })
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
