package rules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nominacl/consolidation/pkg/money"
)

// Source names as written in fuentes_utilizadas and fuente_dato.
const (
	SourceLibro       = "libro"
	SourceNovedades   = "novedades"
	SourceMovimientos = "movimientos"
)

// Concept types that count in a total; any other type is kept but counts in neither.
const (
	TypeHaber     = "haber"
	TypeDescuento = "descuento"
)

// Rule ids written in reglas_aplicadas, one for each rule that changed something.
const (
	RuleRUT             = "R1"        // the libro RUT was not written in canonical form
	RuleNombreNovedades = "R3.nombre" // nombre came from novedades (libro's missing)
	RuleCargoNovedades  = "R3.cargo"  // cargo came from novedades and differs from libro's
	RuleLinesSummed     = "R4.sum"    // two or more lines of one code in a source were summed
	RuleCodeTrimmed     = "R4.code"   // a code or type had to be trimmed or lower-cased
	RuleNovedadesValue  = "R5"        // a concept was taken from novedades
	RuleMovements       = "R7"        // a movement flag is set
)

// ConceptLine is one line of the consolidated record.
type ConceptLine struct {
	Code   string
	Name   string
	Value  money.Cents
	Type   string
	Source string
}

// Consolidated is the consolidated record of one employee.
type Consolidated struct {
	EmpleadoOrigenID       int64
	RUT                    string
	NombreCompleto         string
	Cargo                  string
	CentroCosto            string
	EsIngreso              bool
	EsFiniquito            bool
	TieneAusentismo        bool
	TotalHaberes           money.Cents
	TotalDescuentos        money.Cents
	LiquidoPagar           money.Cents
	FuentesUtilizadas      []string
	ReglasAplicadas        []string
	DiscrepanciasResueltas int
	Lines                  []ConceptLine // sorted by code
}

// OverflowError means an amount of an employee's record does not fit numeric(12,2).
// It names the libro row id and the field, never the RUT, name or amount.
type OverflowError struct {
	EmpleadoID int64
	Field      string
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("employee row %d: %s does not fit numeric(12,2)", e.EmpleadoID, e.Field)
}

func (e *OverflowError) Unwrap() error { return money.ErrOutOfRange }

// Consolidate applies R2–R8 to one libro employee. The caller has matched the
// novedades row and the movements by canonical RUT (R1, R2).
func Consolidate(src Sources, month Month) (Consolidated, error) {
	return consolidate(src, month, nil)
}

// Explain is Consolidate that also records each of its decisions: the same code
// decides, and notes why as it goes.
func Explain(src Sources, month Month) (Consolidated, Explanation, error) {
	var ex Explanation
	out, err := consolidate(src, month, &ex)
	return out, ex, err
}

// consolidate is Consolidate; when ex is not nil, every decision of R5 and R7 is
// recorded in it where it is taken.
func consolidate(src Sources, month Month, ex *Explanation) (Consolidated, error) {
	lib := src.Libro
	out := Consolidated{
		EmpleadoOrigenID:  lib.ID,
		RUT:               lib.RUT,
		FuentesUtilizadas: []string{SourceLibro},
		ReglasAplicadas:   []string{},
	}
	applied := func(rule string) {
		if !slices.Contains(out.ReglasAplicadas, rule) {
			out.ReglasAplicadas = append(out.ReglasAplicadas, rule)
		}
	}
	if lib.RawRUT != lib.RUT {
		applied(RuleRUT)
	}

	// R3: personal data.
	nov := src.Novedades
	var novNombre, novCargo Text
	if nov != nil {
		novNombre, novCargo = nov.Nombre, nov.Cargo
		out.FuentesUtilizadas = append(out.FuentesUtilizadas, SourceNovedades)
	}
	out.NombreCompleto = firstPresent(lib.Nombre, novNombre)
	if missing(lib.Nombre) && !missing(novNombre) {
		applied(RuleNombreNovedades)
	}
	out.Cargo = firstPresent(novCargo, lib.Cargo)
	if !missing(novCargo) && out.Cargo != strings.TrimSpace(lib.Cargo.String) {
		applied(RuleCargoNovedades)
	}
	out.CentroCosto = firstPresent(lib.CentroCosto)

	// R4: concept lines of each source, summed by trimmed code.
	keep := ex != nil
	libro, err := sumLines(lib.ID, lib.Lines, applied, keep)
	if err != nil {
		return Consolidated{}, err
	}
	var novedades map[string]*summed
	if nov != nil {
		if novedades, err = sumLines(lib.ID, nov.Lines, applied, keep); err != nil {
			return Consolidated{}, err
		}
	}

	// R5: precedence, and R8's count of resolved discrepancies.
	for code, l := range libro {
		n, ok := novedades[code]
		if ok && n.value != 0 {
			if n.value != l.value {
				out.DiscrepanciasResueltas++
			}
			out.Lines = append(out.Lines, n.line(code, SourceNovedades))
			applied(RuleNovedadesValue)
			ex.concept(code, l, n, SourceNovedades, n.value != l.value, reasonNovedadesWins)
			continue
		}
		out.Lines = append(out.Lines, l.line(code, SourceLibro))
		ex.concept(code, l, n, SourceLibro, false, libroKept(nov != nil, ok))
	}
	for code, n := range novedades {
		if _, inLibro := libro[code]; !inLibro {
			if n.value != 0 {
				out.Lines = append(out.Lines, n.line(code, SourceNovedades))
				applied(RuleNovedadesValue)
				ex.concept(code, nil, n, SourceNovedades, true, reasonOnlyNovedades)
			} else {
				ex.concept(code, nil, n, "", false, reasonZeroOnlyNovedades)
			}
		}
	}
	slices.SortFunc(out.Lines, func(a, b ConceptLine) int { return cmp.Compare(a.Code, b.Code) })
	ex.sortConcepts()

	// R6: totals.
	for _, l := range out.Lines {
		switch l.Type {
		case TypeHaber:
			if out.TotalHaberes, err = money.Add(out.TotalHaberes, l.Value); err != nil {
				return Consolidated{}, &OverflowError{EmpleadoID: lib.ID, Field: "total_haberes"}
			}
		case TypeDescuento:
			if out.TotalDescuentos, err = money.Add(out.TotalDescuentos, l.Value); err != nil {
				return Consolidated{}, &OverflowError{EmpleadoID: lib.ID, Field: "total_descuentos"}
			}
		}
	}
	if out.LiquidoPagar, err = money.Add(out.TotalHaberes, -out.TotalDescuentos); err != nil {
		return Consolidated{}, &OverflowError{EmpleadoID: lib.ID, Field: "liquido_pagar"}
	}

	// R7: movements of the month.
	first, last := month.First(), month.Last()
	ingreso, finiquito, ausentismo := ex.flag(FlagIngreso), ex.flag(FlagFiniquito), ex.flag(FlagAusentismo)
	for _, m := range src.AltasBajas {
		if m.Fecha.Before(first) || m.Fecha.After(last) {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(m.Tipo)) {
		case "ingreso":
			out.EsIngreso = true
			ingreso.altaBaja(m)
		case "finiquito":
			out.EsFiniquito = true
			finiquito.altaBaja(m)
		}
	}
	for _, a := range src.Ausentismos {
		if !a.Inicio.After(last) && (a.Fin.IsZero() || !a.Fin.Before(first)) {
			out.TieneAusentismo = true
			ausentismo.ausentismo(a)
		}
	}
	if out.EsIngreso || out.EsFiniquito || out.TieneAusentismo {
		out.FuentesUtilizadas = append(out.FuentesUtilizadas, SourceMovimientos)
		applied(RuleMovements)
	}
	return out, nil
}

// summed is one code's lines of one source, added up.
type summed struct {
	value money.Cents
	name  string
	typ   string
	lines []Line // the lines summed, kept only for an explanation
}

func (s *summed) line(code, source string) ConceptLine {
	return ConceptLine{Code: code, Name: s.name, Value: s.value, Type: s.typ, Source: source}
}

// sumLines groups a source's lines by trimmed code; name and type come from the
// line with the lowest id.
func sumLines(empleadoID int64, lines []Line, applied func(string), keep bool) (map[string]*summed, error) {
	ordered := slices.Clone(lines)
	slices.SortFunc(ordered, func(a, b Line) int { return cmp.Compare(a.ID, b.ID) })
	out := make(map[string]*summed, len(ordered))
	for _, l := range ordered {
		code := strings.TrimSpace(l.Code)
		typ := strings.ToLower(strings.TrimSpace(l.Type))
		if code != l.Code || typ != l.Type {
			applied(RuleCodeTrimmed)
		}
		s, ok := out[code]
		if !ok {
			s = &summed{value: l.Value, name: l.Name, typ: typ}
			if keep {
				s.lines = []Line{l}
			}
			out[code] = s
			if !l.Value.Fits() {
				return nil, &OverflowError{EmpleadoID: empleadoID, Field: "concept " + code}
			}
			continue
		}
		if keep {
			s.lines = append(s.lines, l)
		}
		applied(RuleLinesSummed)
		v, err := money.Add(s.value, l.Value)
		if err != nil {
			if errors.Is(err, money.ErrOutOfRange) {
				return nil, &OverflowError{EmpleadoID: empleadoID, Field: "concept " + code}
			}
			return nil, err
		}
		s.value = v
	}
	return out, nil
}

func missing(t Text) bool { return !t.Valid || strings.TrimSpace(t.String) == "" }

// firstPresent is the first non-missing value, trimmed, or "".
func firstPresent(values ...Text) string {
	for _, v := range values {
		if !missing(v) {
			return strings.TrimSpace(v.String)
		}
	}
	return ""
}
