package rules_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/pkg/rules"
)

// Explain gives the record Consolidate gives, and a decision per code of either
// source that says which value was chosen, from where and why.
func TestExplainConcepts(t *testing.T) {
	t.Parallel()
	src := rules.Sources{
		Libro: libro(line(1, "SB", 100000, "haber"), line(2, " AFP", 11000, "descuento"), line(3, "AFP", 500, "descuento"),
			line(4, "BONO", 2000, "haber"), line(5, "COL", 3000, "haber")),
		Novedades: &rules.Novedades{ID: 77, Lines: []rules.Line{
			line(60, "SB", 120000, "haber"), line(61, "BONO", 0, "haber"), line(62, "EXTRA", 700, "haber"), line(63, "CERO", 0, "haber"),
		}},
	}
	want, err := rules.Consolidate(src, march)
	require.NoError(t, err)
	got, ex, err := rules.Explain(src, march)
	require.NoError(t, err)
	require.Equal(t, want, got)

	byCode := map[string]rules.ConceptDecision{}
	for _, d := range ex.Concepts {
		byCode[d.Code] = d
	}
	require.Len(t, ex.Concepts, 6)
	require.Equal(t, []string{"AFP", "BONO", "CERO", "COL", "EXTRA", "SB"}, codes(ex.Concepts))

	sb := byCode["SB"]
	require.True(t, sb.Chosen)
	require.Equal(t, "novedades", sb.Source)
	require.EqualValues(t, 120000, sb.Value)
	require.EqualValues(t, 100000, sb.LibroValue)
	require.EqualValues(t, 120000, sb.NovedadesValue)
	require.True(t, sb.Discrepancy)
	require.Equal(t, "R5", sb.Rule)
	require.Contains(t, sb.Reason, "takes precedence")
	require.Equal(t, []int64{1}, lineIDs(sb.LibroLines))
	require.Equal(t, []int64{60}, lineIDs(sb.NovedadesLines))

	afp := byCode["AFP"] // two libro lines summed, novedades lacks it
	require.Equal(t, "libro", afp.Source)
	require.EqualValues(t, 11500, afp.Value)
	require.Equal(t, []int64{2, 3}, lineIDs(afp.LibroLines))
	require.False(t, afp.InNovedades)
	require.Contains(t, afp.Reason, "no line of this concept")

	bono := byCode["BONO"] // novedades zero: libro kept
	require.Equal(t, "libro", bono.Source)
	require.EqualValues(t, 2000, bono.Value)
	require.True(t, bono.InNovedades)
	require.False(t, bono.Discrepancy)
	require.Contains(t, bono.Reason, "zero")

	extra := byCode["EXTRA"]
	require.Equal(t, "novedades", extra.Source)
	require.False(t, extra.InLibro)
	require.True(t, extra.Discrepancy)

	cero := byCode["CERO"] // no line at all
	require.False(t, cero.Chosen)
	require.Empty(t, cero.Source)

	// Every chosen decision is a line of the record, with the same value and source.
	var chosen []rules.ConceptLine
	for _, d := range ex.Concepts {
		if d.Chosen {
			chosen = append(chosen, rules.ConceptLine{Code: d.Code, Value: d.Value, Source: d.Source})
		}
	}
	require.Len(t, chosen, len(got.Lines))
	for i, l := range got.Lines {
		require.Equal(t, rules.ConceptLine{Code: l.Code, Value: l.Value, Source: l.Source}, chosen[i])
	}
}

func TestExplainNoNovedadesRow(t *testing.T) {
	t.Parallel()
	_, ex, err := rules.Explain(rules.Sources{Libro: libro(line(1, "SB", 100, "haber"))}, march)
	require.NoError(t, err)
	require.Len(t, ex.Concepts, 1)
	require.Contains(t, ex.Concepts[0].Reason, "no novedades row")
}

// The flags name the movements that set them, and only those of the month.
func TestExplainFlags(t *testing.T) {
	t.Parallel()
	src := rules.Sources{
		Libro: libro(),
		AltasBajas: []rules.AltaBaja{
			{ID: 5, Tipo: "ingreso", Fecha: day(2026, 3, 10)},
			{ID: 6, Tipo: "finiquito", Fecha: day(2026, 2, 27)}, // before the month
		},
		Ausentismos: []rules.Ausentismo{{ID: 9, Inicio: day(2026, 2, 20)}}, // open: overlaps
	}
	got, ex, err := rules.Explain(src, march)
	require.NoError(t, err)
	require.True(t, got.EsIngreso)
	require.False(t, got.EsFiniquito)
	require.True(t, got.TieneAusentismo)
	require.Len(t, ex.Flags, 3)
	for _, f := range ex.Flags {
		require.Equal(t, "R7", f.Rule)
		switch f.Flag {
		case rules.FlagIngreso:
			require.True(t, f.Value)
			require.Len(t, f.AltasBajas, 1)
			require.EqualValues(t, 5, f.AltasBajas[0].ID)
		case rules.FlagFiniquito:
			require.False(t, f.Value)
			require.Empty(t, f.AltasBajas)
			require.Contains(t, f.Reason, "no finiquito")
		case rules.FlagAusentismo:
			require.True(t, f.Value)
			require.Len(t, f.Ausentismos, 1)
			require.EqualValues(t, 9, f.Ausentismos[0].ID)
		default:
			t.Fatalf("unexpected flag %q", f.Flag)
		}
	}
}

func codes(ds []rules.ConceptDecision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Code)
	}
	return out
}

func lineIDs(ls []rules.Line) []int64 {
	var out []int64
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}
