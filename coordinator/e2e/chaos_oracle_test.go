package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The soak's oracle: the rules of docs/rules.md computed again from the source
// tables with SQL and Go of the test's own, none of pkg/rut, pkg/rules or
// pkg/store, so a bug there cannot hide in the check. It derives every column of
// a consolidated employee and its concepts but reglas_aplicadas (a list of which
// rules changed something, whose wording is the service's).

// oracleEmployee is what the rules give for one libro employee, and what the
// service's row is read into, as comparable text.
type oracleEmployee struct {
	Row      string   // the employee row's columns
	Concepts []string // codigo|nombre|valor|tipo|fuente, sorted
}

// canonicalRUT is R1: drop dots, spaces, tabs and dashes, upper-case K, strip the
// body's leading zeros, check the digit by modulo 11.
func canonicalRUT(raw string) (string, bool) {
	s := strings.ToUpper(strings.NewReplacer(".", "", " ", "", "\t", "", "-", "").Replace(raw))
	if len(s) < 2 {
		return "", false
	}
	body, dv := strings.TrimLeft(s[:len(s)-1], "0"), s[len(s)-1]
	if body == "" || len(body) > 9 || strings.Trim(body, "0123456789") != "" {
		return "", false
	}
	sum, w := 0, 2
	for i := len(body) - 1; i >= 0; i-- {
		sum += int(body[i]-'0') * w
		if w++; w > 7 {
			w = 2
		}
	}
	want := byte('0' + (11-sum%11)%11)
	switch 11 - sum%11 {
	case 11:
		want = '0'
	case 10:
		want = 'K'
	}
	if dv != want {
		return "", false
	}
	return body + "-" + string(dv), true
}

// cents parses numeric text ("-12.5", "100.00") exactly.
func cents(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	frac = (frac + "00")[:2]
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if neg {
		n = -n
	}
	return n, err
}

func centsText(c int64) string { return strconv.FormatInt(c, 10) }

type oracleLine struct {
	id         int64
	code, name string
	cents      int64
	typ        string
}

type oracleSum struct {
	name, typ string
	cents     int64
	firstID   int64
}

func sumByCode(lines []oracleLine) map[string]*oracleSum {
	out := map[string]*oracleSum{}
	slices.SortFunc(lines, func(a, b oracleLine) int { return int(a.id - b.id) })
	for _, l := range lines {
		code := strings.TrimSpace(l.code)
		s, ok := out[code]
		if !ok {
			s = &oracleSum{name: strings.TrimSpace(l.name), typ: strings.ToLower(strings.TrimSpace(l.typ)), firstID: l.id}
			out[code] = s
		}
		s.cents += l.cents
	}
	return out
}

func textOf(t pgtype.Text) string {
	if !t.Valid {
		return ""
	}
	return strings.TrimSpace(t.String)
}

// oracle computes the expected rows of a closing, keyed by libro row id.
func oracle(ctx context.Context, pool *pgxpool.Pool, closingID int64) (map[int64]oracleEmployee, error) {
	var mes, anno int
	if err := pool.QueryRow(ctx, "SELECT mes, anno FROM nomina_cierrenomina WHERE id = $1", closingID).Scan(&mes, &anno); err != nil {
		return nil, err
	}
	monthStart := time.Date(anno, time.Month(mes), 1, 0, 0, 0, 0, time.UTC)
	monthEnd := monthStart.AddDate(0, 1, -1)

	type person struct {
		id                int64
		rut               string
		nombre, cargo, cc pgtype.Text
		lines             []oracleLine
	}
	readPeople := func(sql string) ([]*person, map[int64]*person, error) {
		var list []*person
		byID := map[int64]*person{}
		rows, err := pool.Query(ctx, sql, closingID)
		if err != nil {
			return nil, nil, err
		}
		defer rows.Close()
		for rows.Next() {
			p := &person{}
			if err := rows.Scan(&p.id, &p.rut, &p.nombre, &p.cargo, &p.cc); err != nil {
				return nil, nil, err
			}
			list = append(list, p)
			byID[p.id] = p
		}
		return list, byID, rows.Err()
	}
	readLines := func(sql string, byID map[int64]*person) error {
		rows, err := pool.Query(ctx, sql, closingID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var owner int64
			var l oracleLine
			var valor string
			if err := rows.Scan(&owner, &l.id, &l.code, &l.name, &valor, &l.typ); err != nil {
				return err
			}
			if l.cents, err = cents(valor); err != nil {
				return err
			}
			byID[owner].lines = append(byID[owner].lines, l)
		}
		return rows.Err()
	}
	libro, libroByID, err := readPeople(`SELECT id, rut, nombre, cargo, centro_costo FROM nomina_empleado_cierre WHERE cierre_id = $1`)
	if err != nil {
		return nil, err
	}
	if err := readLines(`SELECT l.empleado_id, l.id, l.codigo_concepto, l.nombre_concepto, l.valor::text, l.tipo_concepto
		FROM nomina_registro_concepto_empleado l JOIN nomina_empleado_cierre e ON e.id = l.empleado_id WHERE e.cierre_id = $1`, libroByID); err != nil {
		return nil, err
	}
	nov, novByID, err := readPeople(`SELECT id, rut, nombre, cargo, centro_costo FROM nomina_empleado_cierre_novedades WHERE cierre_id = $1`)
	if err != nil {
		return nil, err
	}
	if err := readLines(`SELECT l.empleado_id, l.id, l.codigo_concepto, l.nombre_concepto, l.valor::text, l.tipo_concepto
		FROM nomina_registro_concepto_empleado_novedades l JOIN nomina_empleado_cierre_novedades e ON e.id = l.empleado_id
		WHERE e.cierre_id = $1`, novByID); err != nil {
		return nil, err
	}
	novByRUT := map[string]*person{}
	slices.SortFunc(nov, func(a, b *person) int { return int(a.id - b.id) })
	for _, n := range nov {
		if r, ok := canonicalRUT(n.rut); ok && novByRUT[r] == nil {
			novByRUT[r] = n
		}
	}
	// R7: movements of the month, matched by canonical RUT.
	ingreso, finiquito, ausente := map[string]bool{}, map[string]bool{}, map[string]bool{}
	rows, err := pool.Query(ctx, `SELECT rut, tipo_movimiento FROM nomina_movimiento_alta_baja
		WHERE fecha_movimiento BETWEEN $1 AND $2`, monthStart, monthEnd)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r, tipo string
		if err := rows.Scan(&r, &tipo); err != nil {
			rows.Close()
			return nil, err
		}
		if c, ok := canonicalRUT(r); ok {
			switch strings.ToLower(strings.TrimSpace(tipo)) {
			case "ingreso":
				ingreso[c] = true
			case "finiquito":
				finiquito[c] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = pool.Query(ctx, `SELECT rut FROM nomina_movimiento_ausentismo
		WHERE fecha_inicio <= $2 AND (fecha_fin IS NULL OR fecha_fin >= $1)`, monthStart, monthEnd)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, err
		}
		if c, ok := canonicalRUT(r); ok {
			ausente[c] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	out := make(map[int64]oracleEmployee, len(libro))
	for _, l := range libro {
		r, ok := canonicalRUT(l.rut)
		if !ok {
			return nil, fmt.Errorf("libro row %d: a RUT that does not normalize", l.id)
		}
		n := novByRUT[r]
		fuentes := []string{`"libro"`}
		nombre, cargo := textOf(l.nombre), textOf(l.cargo)
		var nsums map[string]*oracleSum
		if n != nil {
			fuentes = append(fuentes, `"novedades"`)
			if nombre == "" {
				nombre = textOf(n.nombre)
			}
			if c := textOf(n.cargo); c != "" {
				cargo = c
			}
			nsums = sumByCode(n.lines)
		}
		lsums := sumByCode(l.lines)
		var concepts []string
		var haberes, descuentos int64
		discrepancias := 0
		codes := map[string]bool{}
		for c := range lsums {
			codes[c] = true
		}
		for c, s := range nsums {
			if s.cents != 0 {
				codes[c] = true
			}
		}
		for code := range codes {
			src, fuente := lsums[code], "libro"
			if ns := nsums[code]; ns != nil && ns.cents != 0 {
				if ls := lsums[code]; ls != nil && ls.cents != ns.cents {
					discrepancias++
				}
				src, fuente = ns, "novedades"
			}
			switch src.typ {
			case "haber":
				haberes += src.cents
			case "descuento":
				descuentos += src.cents
			}
			concepts = append(concepts, strings.Join([]string{code, src.name, centsText(src.cents), src.typ, fuente}, "|"))
		}
		slices.Sort(concepts)
		if ingreso[r] || finiquito[r] || ausente[r] {
			fuentes = append(fuentes, `"movimientos"`)
		}
		out[l.id] = oracleEmployee{
			Row: strings.Join([]string{r, nombre, cargo, textOf(l.cc), strconv.FormatBool(ingreso[r]),
				strconv.FormatBool(finiquito[r]), strconv.FormatBool(ausente[r]), centsText(haberes), centsText(descuentos),
				centsText(haberes - descuentos), "[" + strings.Join(fuentes, ", ") + "]", strconv.Itoa(discrepancias)}, "|"),
			Concepts: concepts,
		}
	}
	return out, nil
}

// writtenRows reads the service's rows of a closing in the oracle's shape, with
// the run that wrote each and how many rows each libro employee has.
func writtenRows(ctx context.Context, pool *pgxpool.Pool, closingID int64) (map[int64]oracleEmployee, map[int64]int64, map[int64]int, error) {
	got, runs, count := map[int64]oracleEmployee{}, map[int64]int64{}, map[int64]int{}
	rows, err := pool.Query(ctx, `
		SELECT e.empleado_origen_id, coalesce(e.consolidation_run_id, 0), e.rut, e.nombre_completo, e.cargo, e.centro_costo,
		       e.es_ingreso, e.es_finiquito, e.tiene_ausentismo, e.total_haberes::text, e.total_descuentos::text,
		       e.liquido_pagar::text, e.fuentes_utilizadas::text, e.discrepancias_resueltas,
		       coalesce((SELECT array_agg(c.codigo_concepto || '|' || c.nombre_concepto || '|' || c.valor::text || '|' ||
		                   c.tipo_concepto || '|' || c.fuente_dato) FROM nomina_concepto_empleado_consolidado c
		                 WHERE c.empleado_consolidado_id = e.id), '{}')
		FROM nomina_empleado_consolidado e WHERE e.cierre_id = $1`, closingID)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, run int64
		var r, nombre, cargo, cc, th, td, lp, fuentes string
		var ing, fin, aus bool
		var disc int
		var concepts []string
		if err := rows.Scan(&id, &run, &r, &nombre, &cargo, &cc, &ing, &fin, &aus, &th, &td, &lp, &fuentes, &disc, &concepts); err != nil {
			return nil, nil, nil, err
		}
		money3 := make([]string, 3)
		for i, v := range []string{th, td, lp} {
			c, err := cents(v)
			if err != nil {
				return nil, nil, nil, err
			}
			money3[i] = centsText(c)
		}
		for i, c := range concepts {
			f := strings.Split(c, "|")
			if len(f) == 5 {
				v, err := cents(f[2])
				if err != nil {
					return nil, nil, nil, err
				}
				f[2] = centsText(v)
				concepts[i] = strings.Join(f, "|")
			}
		}
		slices.Sort(concepts)
		got[id] = oracleEmployee{Row: strings.Join([]string{r, nombre, cargo, cc, strconv.FormatBool(ing), strconv.FormatBool(fin),
			strconv.FormatBool(aus), money3[0], money3[1], money3[2], fuentes, strconv.Itoa(disc)}, "|"), Concepts: concepts}
		runs[id] = run
		count[id]++
	}
	return got, runs, count, rows.Err()
}
