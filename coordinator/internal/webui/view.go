package webui

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
)

// What the pages say, in the payroll team's words: estados and chunk states as
// they read them, amounts in Chilean pesos, counts with dots between thousands.

// estadoLabels name each estado a run can be in.
var estadoLabels = map[domain.Estado]string{
	domain.EstadoConsolidando:  "Consolidando datos",
	domain.EstadoConsolidados:  "Datos consolidados",
	domain.EstadoParcial:       "Consolidación parcial",
	domain.EstadoError:         "Error de consolidación",
	domain.EstadoCancelada:     "Consolidación cancelada",
	domain.EstadoTimeout:       "Tiempo agotado",
	domain.EstadoErrorRecursos: "Error de recursos",
}

// runEstados are the estados in the runs page's filter, in the order a run
// meets them.
var runEstados = []domain.Estado{domain.EstadoConsolidando, domain.EstadoConsolidados, domain.EstadoParcial,
	domain.EstadoError, domain.EstadoCancelada, domain.EstadoTimeout, domain.EstadoErrorRecursos}

func estadoLabel(e domain.Estado) string {
	if l, ok := estadoLabels[e]; ok {
		return l
	}
	return string(e)
}

// estadoTone is the colour class of an estado's badge.
func estadoTone(e domain.Estado) string {
	switch e {
	case domain.EstadoConsolidando:
		return "running"
	case domain.EstadoConsolidados:
		return "ok"
	case domain.EstadoParcial, domain.EstadoTimeout, domain.EstadoCancelada:
		return "warn"
	default:
		return "bad"
	}
}

var chunkLabels = map[domain.ChunkStatus]string{
	domain.ChunkPending:   "pendiente",
	domain.ChunkRunning:   "en curso",
	domain.ChunkSucceeded: "exitoso",
	domain.ChunkFailed:    "fallido",
	domain.ChunkSplit:     "dividido",
}

func chunkLabel(s domain.ChunkStatus) string {
	if l, ok := chunkLabels[s]; ok {
		return l
	}
	return string(s)
}

func modeLabel(m domain.Mode) string {
	if m == domain.ModeRetryFailed {
		return "reintento de fallidos"
	}
	return "completa"
}

// pesos writes an amount as "$ 1.234.567", with the cents only when there are
// some ("$ 1.234,50").
func pesos(c money.Cents) string {
	s := c.CLP()
	return strings.TrimSuffix(s, ",00")
}

// count writes an integer with dots between thousands: 100.000.
func count[T ~int | ~int32 | ~int64](n T) string {
	s := strconv.FormatInt(int64(n), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// decimal writes x with digits decimals and a decimal comma: 1.234,5.
func decimal(x float64, digits int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	s := strconv.FormatFloat(math.Abs(x), 'f', digits, 64)
	whole, frac, _ := strings.Cut(s, ".")
	n, _ := strconv.ParseInt(whole, 10, 64)
	out := count(n)
	if x < 0 && (n != 0 || strings.Trim(frac, "0") != "") {
		out = "-" + out
	}
	if frac != "" {
		out += "," + frac
	}
	return out
}

// percent writes 0..100 with one decimal: "42,0 %".
func percent(p float64) string { return decimal(p, 1) + " %" }

// duration writes a duration for people: "2 h 05 min", "3 min 07 s", "12,3 s".
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0 s"
	case d < time.Minute:
		return decimal(d.Seconds(), 1) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
}

// timestamp writes a time in the server's zone, to the second.
func timestamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// traceID is the trace id of a W3C traceparent ("00-<trace>-<span>-<flags>"),
// "" when it holds none.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	return parts[1]
}
