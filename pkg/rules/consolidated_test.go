package rules_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rules"
)

var march = rules.Month{Year: 2026, Month: time.March}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func libro(lines ...rules.Line) rules.Libro {
	return rules.Libro{
		ID: 10, RUT: "12345678-5", RawRUT: "12345678-5",
		Nombre: rules.Some("Ana Pérez"), Cargo: rules.Some("Analista"), CentroCosto: rules.Some("CC-01"),
		Lines: lines,
	}
}

func line(id int64, code string, cents money.Cents, typ string) rules.Line {
	return rules.Line{ID: id, Code: code, Name: "Concepto " + code, Value: cents, Type: typ}
}

func TestConceptRules(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		libro     []rules.Line
		novedades []rules.Line // nil: no novedades row
		want      []rules.ConceptLine
		haberes   money.Cents
		desc      money.Cents
		liquido   money.Cents
		resolved  int
		reglas    []string
	}{
		{
			name:    "LibroOnly",
			libro:   []rules.Line{line(1, "SB", 100000, "haber"), line(2, "AFP", 11000, "descuento")},
			want:    []rules.ConceptLine{{"AFP", "Concepto AFP", 11000, "descuento", "libro"}, {"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes: 100000, desc: 11000, liquido: 89000, reglas: []string{},
		},
		{
			name:    "DuplicateLinesSummedNameFromLowestID",
			libro:   []rules.Line{{ID: 7, Code: "BONO", Name: "Bono B", Value: 500, Type: "haber"}, {ID: 3, Code: "BONO", Name: "Bono A", Value: 1250, Type: "haber"}},
			want:    []rules.ConceptLine{{"BONO", "Bono A", 1750, "haber", "libro"}},
			haberes: 1750, liquido: 1750, reglas: []string{"R4.sum"},
		},
		{
			name:      "NovedadesNonZeroWins",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{{ID: 50, Code: "SB", Name: "Sueldo nuevo", Value: 120000, Type: "haber"}},
			want:      []rules.ConceptLine{{"SB", "Sueldo nuevo", 120000, "haber", "novedades"}},
			haberes:   120000, liquido: 120000, resolved: 1, reglas: []string{"R5"},
		},
		{
			name:      "NovedadesSameValueIsNoDiscrepancy",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{line(50, "SB", 100000, "haber")},
			want:      []rules.ConceptLine{{"SB", "Concepto SB", 100000, "haber", "novedades"}},
			haberes:   100000, liquido: 100000, resolved: 0, reglas: []string{"R5"},
		},
		{
			name:      "NovedadesZeroKeepsLibro",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{line(50, "SB", 0, "haber")},
			want:      []rules.ConceptLine{{"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes:   100000, liquido: 100000, reglas: []string{},
		},
		{
			name:      "NovedadesOnlyZeroOmitted",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{line(50, "HEX", 0, "haber")},
			want:      []rules.ConceptLine{{"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes:   100000, liquido: 100000, reglas: []string{},
		},
		{
			name:      "NovedadesOnlyNonZeroAdded",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{line(50, "HEX", 2550, "haber")},
			want:      []rules.ConceptLine{{"HEX", "Concepto HEX", 2550, "haber", "novedades"}, {"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes:   102550, liquido: 102550, reglas: []string{"R5"},
		},
		{
			name:      "NovedadesLinesSummedToZeroKeepLibro",
			libro:     []rules.Line{line(1, "SB", 100000, "haber")},
			novedades: []rules.Line{line(50, "SB", 3000, "haber"), line(51, "SB", -3000, "haber")},
			want:      []rules.ConceptLine{{"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes:   100000, liquido: 100000, reglas: []string{"R4.sum"},
		},
		{
			name:      "CodesWithSurroundingSpacesMatch",
			libro:     []rules.Line{line(1, " SB ", 100000, "haber")},
			novedades: []rules.Line{line(50, "SB\t", 110000, "haber")},
			want:      []rules.ConceptLine{{"SB", "Concepto SB\t", 110000, "haber", "novedades"}},
			haberes:   110000, liquido: 110000, resolved: 1, reglas: []string{"R4.code", "R5"},
		},
		{
			name:    "MixedCaseTypes",
			libro:   []rules.Line{line(1, "SB", 100000, " Haber"), line(2, "AFP", 11000, "DESCUENTO ")},
			want:    []rules.ConceptLine{{"AFP", "Concepto AFP", 11000, "descuento", "libro"}, {"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes: 100000, desc: 11000, liquido: 89000, reglas: []string{"R4.code"},
		},
		{
			name:    "InformativoInNoTotal",
			libro:   []rules.Line{line(1, "SB", 100000, "haber"), line(2, "DIAS", 3000, "informativo")},
			want:    []rules.ConceptLine{{"DIAS", "Concepto DIAS", 3000, "informativo", "libro"}, {"SB", "Concepto SB", 100000, "haber", "libro"}},
			haberes: 100000, liquido: 100000, reglas: []string{},
		},
		{
			name:    "NegativeValuesAndNegativeLiquido",
			libro:   []rules.Line{line(1, "AJ", -5000, "haber"), line(2, "ANT", 20000, "descuento")},
			want:    []rules.ConceptLine{{"AJ", "Concepto AJ", -5000, "haber", "libro"}, {"ANT", "Concepto ANT", 20000, "descuento", "libro"}},
			haberes: -5000, desc: 20000, liquido: -25000, reglas: []string{},
		},
		{
			name:    "ExactCents",
			libro:   []rules.Line{line(1, "A", 10, "haber"), line(2, "B", 20, "haber"), line(3, "C", 1, "descuento"), line(4, "C", 2, "descuento")},
			want:    []rules.ConceptLine{{"A", "Concepto A", 10, "haber", "libro"}, {"B", "Concepto B", 20, "haber", "libro"}, {"C", "Concepto C", 3, "descuento", "libro"}},
			haberes: 30, desc: 3, liquido: 27, reglas: []string{"R4.sum"},
		},
		{
			name:    "NoLines",
			want:    nil,
			reglas:  []string{},
			haberes: 0, desc: 0, liquido: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := rules.Sources{Libro: libro(tt.libro...)}
			if tt.novedades != nil {
				src.Novedades = &rules.Novedades{ID: 90, Lines: tt.novedades}
			}
			got, err := rules.Consolidate(src, march)
			require.NoError(t, err)
			require.Equal(t, tt.want, got.Lines)
			require.Equal(t, tt.haberes, got.TotalHaberes, "total_haberes")
			require.Equal(t, tt.desc, got.TotalDescuentos, "total_descuentos")
			require.Equal(t, tt.liquido, got.LiquidoPagar, "liquido_pagar")
			require.Equal(t, tt.resolved, got.DiscrepanciasResueltas, "discrepancias_resueltas")
			require.Equal(t, tt.reglas, got.ReglasAplicadas, "reglas_aplicadas")
		})
	}
}

func TestPersonalData(t *testing.T) {
	t.Parallel()

	missing := rules.Text{}
	blank := rules.Some("   ")
	tests := []struct {
		name                  string
		libNombre, libCargo   rules.Text
		libCC                 rules.Text
		nov                   *rules.Novedades
		nombre, cargo, centro string
		reglas                []string
	}{
		{"LibroOnlyTrimmed", rules.Some(" Ana "), rules.Some(" Analista "), rules.Some(" CC-01 "), nil, "Ana", "Analista", "CC-01", []string{}},
		{"NombreFromNovedadesWhenLibroMissing", missing, rules.Some("Analista"), rules.Some("CC"), &rules.Novedades{Nombre: rules.Some(" Ana N ")}, "Ana N", "Analista", "CC", []string{"R3.nombre"}},
		{"NombreFromNovedadesWhenLibroBlank", blank, rules.Some("Analista"), rules.Some("CC"), &rules.Novedades{Nombre: rules.Some("Ana N")}, "Ana N", "Analista", "CC", []string{"R3.nombre"}},
		{"LibroNombreWins", rules.Some("Ana L"), rules.Some("Analista"), rules.Some("CC"), &rules.Novedades{Nombre: rules.Some("Ana N")}, "Ana L", "Analista", "CC", []string{}},
		{"NombreMissingEverywhere", blank, missing, missing, &rules.Novedades{Nombre: blank}, "", "", "", []string{}},
		{"CargoFromNovedades", rules.Some("Ana"), rules.Some("Analista"), rules.Some("CC"), &rules.Novedades{Cargo: rules.Some(" Jefa ")}, "Ana", "Jefa", "CC", []string{"R3.cargo"}},
		{"CargoSameInNovedadesChangesNothing", rules.Some("Ana"), rules.Some("Jefa"), rules.Some("CC"), &rules.Novedades{Cargo: rules.Some("Jefa")}, "Ana", "Jefa", "CC", []string{}},
		{"CargoNovedadesMissingKeepsLibro", rules.Some("Ana"), rules.Some("Analista"), rules.Some("CC"), &rules.Novedades{Cargo: blank}, "Ana", "Analista", "CC", []string{}},
		{"CargoMissingBoth", rules.Some("Ana"), missing, rules.Some("CC"), &rules.Novedades{}, "Ana", "", "CC", []string{}},
		{"CentroCostoOnlyFromLibro", rules.Some("Ana"), rules.Some("A"), missing, &rules.Novedades{CentroCosto: rules.Some("CC-NOV")}, "Ana", "A", "", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lib := libro()
			lib.Nombre, lib.Cargo, lib.CentroCosto = tt.libNombre, tt.libCargo, tt.libCC
			got, err := rules.Consolidate(rules.Sources{Libro: lib, Novedades: tt.nov}, march)
			require.NoError(t, err)
			require.Equal(t, tt.nombre, got.NombreCompleto)
			require.Equal(t, tt.cargo, got.Cargo)
			require.Equal(t, tt.centro, got.CentroCosto)
			require.Equal(t, tt.reglas, got.ReglasAplicadas)
			wantSources := []string{"libro"}
			if tt.nov != nil {
				wantSources = append(wantSources, "novedades")
			}
			require.Equal(t, wantSources, got.FuentesUtilizadas)
		})
	}
}

func TestMovements(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name                         string
		altas                        []rules.AltaBaja
		ausencias                    []rules.Ausentismo
		ingreso, finiquito, ausencia bool
	}{
		{name: "None"},
		{name: "IngresoInMonth", altas: []rules.AltaBaja{{Tipo: "ingreso", Fecha: day(2026, 3, 1)}}, ingreso: true},
		{name: "FiniquitoLastDay", altas: []rules.AltaBaja{{Tipo: " Finiquito ", Fecha: day(2026, 3, 31)}}, finiquito: true},
		{name: "MixedCaseTipo", altas: []rules.AltaBaja{{Tipo: "INGRESO", Fecha: day(2026, 3, 15)}}, ingreso: true},
		{name: "IngresoPreviousMonthIgnored", altas: []rules.AltaBaja{{Tipo: "ingreso", Fecha: day(2026, 2, 28)}}},
		{name: "FiniquitoNextMonthIgnored", altas: []rules.AltaBaja{{Tipo: "finiquito", Fecha: day(2026, 4, 1)}}},
		{name: "SameMonthOtherYearIgnored", altas: []rules.AltaBaja{{Tipo: "ingreso", Fecha: day(2025, 3, 10)}}},
		{name: "UnknownTipoIgnored", altas: []rules.AltaBaja{{Tipo: "traslado", Fecha: day(2026, 3, 10)}}},
		{name: "AbsenceInsideMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 3, 3), Fin: day(2026, 3, 5)}}, ausencia: true},
		{name: "AbsenceStartedLastMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 2, 20), Fin: day(2026, 3, 2)}}, ausencia: true},
		{name: "AbsenceEndedOnFirstDay", ausencias: []rules.Ausentismo{{Inicio: day(2026, 2, 20), Fin: day(2026, 3, 1)}}, ausencia: true},
		{name: "AbsenceOpenEnded", ausencias: []rules.Ausentismo{{Inicio: day(2025, 12, 1)}}, ausencia: true},
		{name: "AbsenceCoveringWholeMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 1, 1), Fin: day(2026, 6, 30)}}, ausencia: true},
		{name: "AbsenceEndedLastMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 2, 1), Fin: day(2026, 2, 28)}}},
		{name: "AbsenceStartsNextMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 4, 1), Fin: day(2026, 4, 9)}}},
		{name: "OpenAbsenceStartsNextMonth", ausencias: []rules.Ausentismo{{Inicio: day(2026, 4, 1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rules.Consolidate(rules.Sources{Libro: libro(), AltasBajas: tt.altas, Ausentismos: tt.ausencias}, march)
			require.NoError(t, err)
			require.Equal(t, tt.ingreso, got.EsIngreso, "es_ingreso")
			require.Equal(t, tt.finiquito, got.EsFiniquito, "es_finiquito")
			require.Equal(t, tt.ausencia, got.TieneAusentismo, "tiene_ausentismo")
			flagged := tt.ingreso || tt.finiquito || tt.ausencia
			if flagged {
				require.Equal(t, []string{"libro", "movimientos"}, got.FuentesUtilizadas)
				require.Contains(t, got.ReglasAplicadas, "R7")
			} else {
				require.Equal(t, []string{"libro"}, got.FuentesUtilizadas)
				require.NotContains(t, got.ReglasAplicadas, "R7")
			}
		})
	}
}

func TestProvenanceOrder(t *testing.T) {
	t.Parallel()

	src := rules.Sources{
		Libro:       libro(line(1, "SB", 100, "haber")),
		Novedades:   &rules.Novedades{ID: 2},
		Ausentismos: []rules.Ausentismo{{Inicio: day(2026, 3, 9)}},
	}
	src.Libro.RawRUT = "12.345.678-5"
	got, err := rules.Consolidate(src, march)
	require.NoError(t, err)
	require.Equal(t, []string{"libro", "novedades", "movimientos"}, got.FuentesUtilizadas)
	require.Equal(t, []string{"R1", "R7"}, got.ReglasAplicadas)
	require.Equal(t, "12345678-5", got.RUT)
	require.Equal(t, int64(10), got.EmpleadoOrigenID)
}

func TestOverflowNamesEmployeeRow(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		lines []rules.Line
		field string
	}{
		{"TotalHaberes", []rules.Line{line(1, "A", money.MaxNumeric, "haber"), line(2, "B", 1, "haber")}, "total_haberes"},
		{"TotalDescuentos", []rules.Line{line(1, "A", -money.MaxNumeric, "descuento"), line(2, "B", -1, "descuento")}, "total_descuentos"},
		{"Liquido", []rules.Line{line(1, "A", money.MaxNumeric, "haber"), line(2, "B", -1, "descuento")}, "liquido_pagar"},
		{"SummedLine", []rules.Line{line(1, "A", money.MaxNumeric, "informativo"), line(2, "A", 1, "informativo")}, "concept A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := rules.Consolidate(rules.Sources{Libro: libro(tt.lines...)}, march)
			var oe *rules.OverflowError
			require.ErrorAs(t, err, &oe)
			require.Equal(t, int64(10), oe.EmpleadoID)
			require.Equal(t, tt.field, oe.Field)
			require.True(t, errors.Is(err, money.ErrOutOfRange))
			require.Contains(t, err.Error(), "employee row 10")
		})
	}
}

func TestMonthBounds(t *testing.T) {
	t.Parallel()

	feb := rules.Month{Year: 2028, Month: time.February}
	require.Equal(t, day(2028, 2, 1), feb.First())
	require.Equal(t, day(2028, 2, 29), feb.Last())
	dec := rules.Month{Year: 2026, Month: time.December}
	require.Equal(t, day(2026, 12, 31), dec.Last())
}
