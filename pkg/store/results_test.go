package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/rules"
)

// benchChunk is a chunk of n consolidated employees with 24 concept lines each,
// the shape of a generated closing.
func benchChunk(n int) ([]int64, []rules.Consolidated) {
	ids := make([]int64, n)
	recs := make([]rules.Consolidated, n)
	for i := range recs {
		ids[i] = int64(1_000_000 + i)
		r := rules.Consolidated{
			EmpleadoOrigenID:       int64(100 + i),
			RUT:                    fmt.Sprintf("%d-%d", 12_000_000+i, i%10),
			NombreCompleto:         "María José Pérez Soto",
			Cargo:                  "Analista de remuneraciones",
			CentroCosto:            "CC-0420",
			EsIngreso:              i%7 == 0,
			TieneAusentismo:        i%5 == 0,
			FuentesUtilizadas:      []string{"libro", "novedades"},
			ReglasAplicadas:        []string{"R1", "R4.sum", "R5"},
			DiscrepanciasResueltas: i % 3,
		}
		for j := range 24 {
			v := money.Cents(1_234_567 * (j + 1))
			typ := "haber"
			if j >= 12 {
				typ = "descuento"
				r.TotalDescuentos += v
			} else {
				r.TotalHaberes += v
			}
			r.Lines = append(r.Lines, rules.ConceptLine{
				Code: fmt.Sprintf("C%02d", j), Name: "Concepto de prueba", Value: v, Type: typ, Source: "libro",
			})
		}
		r.LiquidoPagar = r.TotalHaberes - r.TotalDescuentos
		recs[i] = r
	}
	return ids, recs
}

// BenchmarkEncodeChunk measures building both COPY bodies of a 1000-employee chunk.
func BenchmarkEncodeChunk(b *testing.B) {
	ids, recs := benchChunk(1000)
	lines := 24 * len(recs)
	at := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeEmployees(7, 42, at, ids, recs); err != nil {
			b.Fatal(err)
		}
		if _, err := encodeConcepts(ids, recs, lines); err != nil {
			b.Fatal(err)
		}
	}
}
