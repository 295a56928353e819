// Package synth generates realistic synthetic closings straight into PostgreSQL for
// the demo, the tests and the benchmarks: messy RUT spellings, duplicate and
// padded concept codes, novedades that overlap the libro (changed, zeroed and new
// concepts), unmatched novedades, and movements on both sides of the month
// boundaries. Everything is written with COPY, in batches, so memory stays flat
// whatever the size, and the same seed always gives the same closing.
package synth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rut"
)

// Config describes the closing to generate.
type Config struct {
	// Employees is the number of libro employees.
	Employees int
	// Year and Month of the closing. Default: 2026-03.
	Year  int
	Month time.Month
	// Seed makes the closing reproducible. Default: 1.
	Seed uint64
	// Estado of the new closing. Default: verificado_sin_discrepancias.
	Estado string
	// BatchSize is how many employees are written per COPY batch. Default: 2000.
	BatchSize int
	// RUTBase, when not 0, is the body of the first employee's RUT (the others
	// follow every 7): a caller generating closings side by side gives each a
	// range of its own, since movements are matched by RUT whatever the closing.
	// 0: drawn from Seed and the closing's id.
	RUTBase uint32
	// NoAnalyze leaves the source tables without fresh statistics: a caller
	// generating many closings analyzes once after the last (each ANALYZE samples
	// tables that grow with every closing, most of generating hundreds).
	NoAnalyze bool
}

// Summary counts what Generate wrote.
type Summary struct {
	ClosingID      int64
	Employees      int
	LibroLines     int
	Novedades      int
	NovedadesLines int
	Unmatched      int
	Movements      int
	Absences       int
	Discrepancies  int
}

type concept struct {
	code, name, typ string
	min, max        money.Cents
}

// catalog is the 24 concepts every generated employee has in the libro.
var catalog = []concept{
	{"SB", "Sueldo base", "haber", 50_000_000, 300_000_000},
	{"GRAT", "Gratificación legal", "haber", 5_000_000, 20_000_000},
	{"HEX", "Horas extra", "haber", 0, 15_000_000},
	{"BONO", "Bono de desempeño", "haber", 0, 30_000_000},
	{"COL", "Colación", "haber", 2_000_000, 6_000_000},
	{"MOV", "Movilización", "haber", 2_000_000, 6_000_000},
	{"ASIGF", "Asignación familiar", "haber", 0, 2_000_000},
	{"COMIS", "Comisiones", "haber", 0, 25_000_000},
	{"AGUIN", "Aguinaldo", "haber", 0, 10_000_000},
	{"VIAT", "Viáticos", "haber", 0, 8_000_000},
	{"BPROD", "Bono producción", "haber", 0, 12_000_000},
	{"TURNO", "Bono turno", "haber", 0, 9_000_000},
	{"AFP", "Cotización AFP", "descuento", 4_000_000, 30_000_000},
	{"SALUD", "Cotización salud", "descuento", 3_000_000, 21_000_000},
	{"AFC", "Seguro de cesantía", "descuento", 300_000, 1_800_000},
	{"IMPTO", "Impuesto único", "descuento", 0, 25_000_000},
	{"ANTIC", "Anticipo", "descuento", 0, 20_000_000},
	{"PREST", "Préstamo", "descuento", 0, 10_000_000},
	{"SIND", "Cuota sindical", "descuento", 0, 1_000_000},
	{"SEGV", "Seguro de vida", "descuento", 0, 1_500_000},
	{"APV", "Ahorro previsional", "descuento", 0, 10_000_000},
	{"CCAF", "Caja de compensación", "descuento", 0, 3_000_000},
	{"DIAS", "Días trabajados", "informativo", 2_000, 3_100},
	{"HORAS", "Horas trabajadas", "informativo", 16_000, 19_000},
}

var (
	firstNames = []string{"Ana", "Luis", "María", "José", "Camila", "Jorge", "Valentina", "Pedro", "Francisca", "Diego", "Catalina", "Matías"}
	lastNames  = []string{"González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez", "Sepúlveda", "Morales", "Rodríguez"}
	cargos     = []string{"Analista", "Operario", "Supervisor", "Contador", "Vendedor", "Jefe de área", "Administrativo", "Técnico"}
)

// Generate writes a new closing and its sources, and returns what it wrote.
func Generate(ctx context.Context, pool *pgxpool.Pool, cfg Config) (Summary, error) {
	if cfg.Employees < 0 {
		return Summary{}, fmt.Errorf("employees must be ≥ 0, got %d", cfg.Employees)
	}
	if cfg.Year == 0 {
		cfg.Year, cfg.Month = 2026, time.March
	}
	if cfg.Month < 1 || cfg.Month > 12 {
		return Summary{}, fmt.Errorf("month must be 1..12, got %d", cfg.Month)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Estado == "" {
		cfg.Estado = "verificado_sin_discrepancias"
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2000
	}
	var s Summary
	closingCols := []string{"mes", "anno", "estado"}
	extra, err := lookupApplicationColumns(ctx, pool, "nomina_cierrenomina", closingCols)
	if err != nil {
		return s, err
	}
	cols, vals := extra.add(closingCols, rows{{int(cfg.Month), cfg.Year, cfg.Estado}})
	params := make([]string, len(cols))
	for i := range params {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	insert := fmt.Sprintf("INSERT INTO nomina_cierrenomina (%s) VALUES (%s) RETURNING id",
		strings.Join(cols, ", "), strings.Join(params, ", "))
	if err := pool.QueryRow(ctx, insert, vals[0]...).Scan(&s.ClosingID); err != nil {
		return s, fmt.Errorf("creating the closing: %w", err)
	}
	g := &generator{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, uint64(s.ClosingID))),
		first: time.Date(cfg.Year, cfg.Month, 1, 0, 0, 0, 0, time.UTC),
		sum:   &s,
	}
	g.last = g.first.AddDate(0, 1, -1)
	// Bodies are base + 7·i: unique within the closing, different across closings.
	g.base = 2_000_000 + uint32(g.rng.IntN(20_000_000))
	if cfg.RUTBase != 0 {
		g.base = cfg.RUTBase
	}
	for start := 0; start < cfg.Employees; start += cfg.BatchSize {
		n := min(cfg.BatchSize, cfg.Employees-start)
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return g.batch(ctx, tx, start, n) }); err != nil {
			return s, fmt.Errorf("writing employees %d..%d of closing %d: %w", start, start+n-1, s.ClosingID, err)
		}
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return g.unmatched(ctx, tx) }); err != nil {
		return s, fmt.Errorf("writing unmatched novedades of closing %d: %w", s.ClosingID, err)
	}
	// A payroll database has statistics on its tables; a freshly loaded one needs
	// them before the planner picks the canonical-RUT indexes.
	if cfg.NoAnalyze {
		return s, nil
	}
	for _, table := range analyzed {
		if _, err := pool.Exec(ctx, "ANALYZE "+table); err != nil {
			return s, fmt.Errorf("analyzing %s: %w", table, err)
		}
	}
	return s, nil
}

var analyzed = []string{
	"nomina_empleado_cierre", "nomina_registro_concepto_empleado", "nomina_empleado_cierre_novedades",
	"nomina_registro_concepto_empleado_novedades", "nomina_movimiento_alta_baja", "nomina_movimiento_ausentismo",
	"nomina_discrepanciacierre",
}

type generator struct {
	cfg         Config
	rng         *rand.Rand
	first, last time.Time
	base        uint32
	sum         *Summary
	extra       map[string]applicationColumns // per source table, looked up once
}

// spell writes a RUT the way people do: dotted, without dash, with leading zeros,
// spaces or a lower-case k.
func (g *generator) spell(r rut.RUT) string {
	s := r.String()
	switch g.rng.IntN(10) {
	case 0, 1, 2:
		s = r.Dotted()
	case 3:
		s = s[:len(s)-2] + s[len(s)-1:]
	case 4:
		s = "0" + r.Dotted()
	case 5:
		s = " " + s[:len(s)-2] + " - " + s[len(s)-1:]
	}
	if r.DV() == 'K' && g.rng.IntN(2) == 0 {
		s = s[:len(s)-1] + "k"
	}
	return s
}

func (g *generator) amount(c concept) money.Cents {
	return c.min + money.Cents(g.rng.Int64N(int64(c.max-c.min)+1))
}

func (g *generator) date(from, to time.Time) time.Time {
	days := int(to.Sub(from).Hours()/24) + 1
	return from.AddDate(0, 0, g.rng.IntN(days))
}

type rows [][]any

func (g *generator) batch(ctx context.Context, tx pgx.Tx, start, n int) error {
	libIDs, err := nextIDs(ctx, tx, "nomina_empleado_cierre", n)
	if err != nil {
		return err
	}
	novIDs, err := nextIDs(ctx, tx, "nomina_empleado_cierre_novedades", n)
	if err != nil {
		return err
	}
	var libro, lines, novedades, novLines, altas, ausencias, discrepancias rows
	closing := g.sum.ClosingID
	for i := range n {
		r, _ := rut.New(g.base + 7*uint32(start+i))
		id := libIDs[i]
		nombre := firstNames[g.rng.IntN(len(firstNames))] + " " + lastNames[g.rng.IntN(len(lastNames))]
		libNombre := nombre
		if g.rng.IntN(100) == 0 {
			libNombre = "  " // only novedades knows the name
		}
		cargo := cargos[g.rng.IntN(len(cargos))]
		sb := g.amount(catalog[0])
		libro = append(libro, []any{id, closing, g.spell(r), libNombre, cargo,
			fmt.Sprintf("CC-%02d", g.rng.IntN(40)), sb, pgtype.Date{}})
		for _, c := range catalog {
			code, typ, v := c.code, c.typ, g.amount(c)
			if c.code == "SB" {
				v = sb
			}
			if g.rng.IntN(40) == 0 {
				code = " " + code + " "
			}
			if g.rng.IntN(40) == 0 {
				typ = "Haber"
				if c.typ != "haber" {
					typ = "DESCUENTO"
					if c.typ == "informativo" {
						typ = "Informativo"
					}
				}
			}
			lines = append(lines, []any{id, code, c.name, v, typ})
			if c.code == "BONO" && g.rng.IntN(50) == 0 { // a second BONO line, summed by R4
				lines = append(lines, []any{id, "BONO", "Bono adicional", g.amount(c), "haber"})
			}
		}
		if g.rng.IntN(5) == 0 {
			nid := novIDs[i]
			var nc pgtype.Text
			if g.rng.IntN(3) == 0 {
				nc = pgtype.Text{String: cargos[g.rng.IntN(len(cargos))], Valid: true}
			}
			novedades = append(novedades, []any{nid, closing, g.spell(r), nombre, nc, pgtype.Text{}})
			for range 1 + g.rng.IntN(4) {
				switch c := catalog[g.rng.IntN(len(catalog)-2)]; g.rng.IntN(4) {
				case 0: // zero: the libro value stays
					novLines = append(novLines, []any{nid, c.code, c.name, money.Cents(0), c.typ})
				case 1: // a concept the libro does not have
					novLines = append(novLines, []any{nid, "NOV" + fmt.Sprint(g.rng.IntN(5)), "Bono novedad", g.amount(catalog[3]) + 100, "haber"})
				default: // a changed value
					novLines = append(novLines, []any{nid, c.code, c.name + " (ajustado)", g.amount(c) + 1, c.typ})
				}
			}
		}
		switch k := g.rng.IntN(100); {
		case k < 3:
			altas = append(altas, []any{g.spell(r), "ingreso", g.date(g.first, g.last), pgtype.Text{}})
		case k < 5:
			altas = append(altas, []any{g.spell(r), "Finiquito", g.date(g.first, g.last), pgtype.Text{String: "renuncia", Valid: true}})
		case k < 7: // just outside the month
			altas = append(altas, []any{g.spell(r), "ingreso", g.first.AddDate(0, 0, -1-g.rng.IntN(20)), pgtype.Text{}})
			altas = append(altas, []any{g.spell(r), "finiquito", g.last.AddDate(0, 0, 1+g.rng.IntN(20)), pgtype.Text{}})
		case k == 7: // a RUT nobody can normalize: ignored
			altas = append(altas, []any{r.String()[:len(r.String())-1] + "X", "ingreso", g.first, pgtype.Text{}})
		}
		switch k := g.rng.IntN(100); {
		case k < 2: // began last month, runs into this one
			ausencias = append(ausencias, g.absence(r, g.first.AddDate(0, 0, -10), g.first.AddDate(0, 0, 3)))
		case k < 4: // inside the month
			from := g.date(g.first, g.last.AddDate(0, 0, -5))
			ausencias = append(ausencias, g.absence(r, from, from.AddDate(0, 0, 4)))
		case k == 4: // open-ended
			ausencias = append(ausencias, []any{g.spell(r), "licencia", g.first.AddDate(0, -2, 0), pgtype.Date{}, int32(0)})
		case k == 5: // ended last month
			ausencias = append(ausencias, g.absence(r, g.first.AddDate(0, 0, -20), g.first.AddDate(0, 0, -1)))
		case k == 6: // starts next month
			ausencias = append(ausencias, g.absence(r, g.last.AddDate(0, 0, 1), g.last.AddDate(0, 0, 8)))
		}
		if g.rng.IntN(20) == 0 {
			for range 1 + g.rng.IntN(2) {
				discrepancias = append(discrepancias, []any{closing, id, "valor_concepto"})
			}
		}
	}
	copies := []struct {
		table string
		cols  []string
		rows  rows
		count *int
	}{
		{"nomina_empleado_cierre", []string{"id", "cierre_id", "rut", "nombre", "cargo", "centro_costo", "sueldo_base", "fecha_ingreso"}, libro, &g.sum.Employees},
		{"nomina_registro_concepto_empleado", []string{"empleado_id", "codigo_concepto", "nombre_concepto", "valor", "tipo_concepto"}, lines, &g.sum.LibroLines},
		{"nomina_empleado_cierre_novedades", []string{"id", "cierre_id", "rut", "nombre", "cargo", "centro_costo"}, novedades, &g.sum.Novedades},
		{"nomina_registro_concepto_empleado_novedades", []string{"empleado_id", "codigo_concepto", "nombre_concepto", "valor", "tipo_concepto"}, novLines, &g.sum.NovedadesLines},
		{"nomina_movimiento_alta_baja", []string{"rut", "tipo_movimiento", "fecha_movimiento", "motivo"}, altas, &g.sum.Movements},
		{"nomina_movimiento_ausentismo", []string{"rut", "tipo_ausentismo", "fecha_inicio", "fecha_fin", "dias_ausentismo"}, ausencias, &g.sum.Absences},
		{"nomina_discrepanciacierre", []string{"cierre_id", "empleado_libro_id", "tipo_discrepancia"}, discrepancias, &g.sum.Discrepancies},
	}
	for _, c := range copies {
		n, err := g.copyInto(ctx, tx, c.table, c.cols, c.rows)
		if err != nil {
			return err
		}
		*c.count += int(n)
	}
	return nil
}

// copyInto copies rows into a source table, with the application's own required
// columns filled in (looked up once per table).
func (g *generator) copyInto(ctx context.Context, tx pgx.Tx, table string, cols []string, rs rows) (int64, error) {
	extra, ok := g.extra[table]
	if !ok {
		var err error
		if extra, err = lookupApplicationColumns(ctx, tx, table, cols); err != nil {
			return 0, err
		}
		if g.extra == nil {
			g.extra = map[string]applicationColumns{}
		}
		g.extra[table] = extra
	}
	cols, rs = extra.add(cols, rs)
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rs))
	if err != nil {
		return 0, fmt.Errorf("copying into %s: %w", table, err)
	}
	return n, nil
}

func (g *generator) absence(r rut.RUT, from, to time.Time) []any {
	return []any{g.spell(r), "licencia médica", from, pgtype.Date{Time: to, Valid: true}, int32(to.Sub(from).Hours()/24) + 1}
}

// unmatched writes novedades rows (about 1 per 200 employees) whose RUT is in no
// libro row of the closing: R2 ignores them.
func (g *generator) unmatched(ctx context.Context, tx pgx.Tx) error {
	var rs rows
	for i := range g.cfg.Employees/200 + 1 {
		r, _ := rut.New(g.base + 7*uint32(g.cfg.Employees+i) + 3)
		rs = append(rs, []any{g.sum.ClosingID, g.spell(r), "Sin libro", pgtype.Text{}, pgtype.Text{}})
	}
	n, err := g.copyInto(ctx, tx, "nomina_empleado_cierre_novedades",
		[]string{"cierre_id", "rut", "nombre", "cargo", "centro_costo"}, rs)
	g.sum.Unmatched = int(n)
	return err
}

// nextIDs takes n ids from a table's identity sequence in one query.
func nextIDs(ctx context.Context, tx pgx.Tx, table string, n int) ([]int64, error) {
	rows, err := tx.Query(ctx, "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)", table, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
