package domain

import "slices"

// Estado is the state of a closing (nomina_cierrenomina.estado), in the payroll
// application's words (docs/lifecycle.md#how-a-run-ends).
type Estado string

const (
	EstadoVerificado       Estado = "verificado_sin_discrepancias"
	EstadoConDiscrepancias Estado = "con_discrepancias"
	EstadoConsolidando     Estado = "consolidando_datos"
	EstadoConsolidados     Estado = "datos_consolidados"
	EstadoParcial          Estado = "consolidacion_parcial"
	EstadoError            Estado = "error_consolidacion"
	EstadoCancelada        Estado = "consolidacion_cancelada"
	EstadoTimeout          Estado = "timeout_consolidacion"
	EstadoErrorRecursos    Estado = "error_recursos"
)

// startable lists the estados a full run may start from without force.
var startable = []Estado{
	EstadoVerificado, EstadoConDiscrepancias, EstadoParcial, EstadoError,
	EstadoCancelada, EstadoTimeout, EstadoErrorRecursos,
}

// Startable lists the estados a full run may start from without force, in the
// order docs/lifecycle.md#how-a-run-ends gives them.
func Startable() []Estado { return slices.Clone(startable) }

// CanStart reports whether a run of the given mode may start from estado e:
// a full run from the startable estados, or from datos_consolidados with force; a
// retry_failed run only from consolidacion_parcial.
func (e Estado) CanStart(mode Mode, force bool) bool {
	if mode == ModeRetryFailed {
		return e == EstadoParcial
	}
	return slices.Contains(startable, e) || force && e == EstadoConsolidados
}

// PartialKeepsPercent is the share of a run's employees, in percent, that must be
// consolidated for a run that did not consolidate them all to end
// consolidacion_parcial, its rows kept, rather than error_consolidacion or
// error_recursos (docs/rules.md, "Run states").
const PartialKeepsPercent = 50

// PartialKeepsRows reports whether a run that consolidated consolidated of its
// employees employees, not all, ends consolidacion_parcial: at least
// PartialKeepsPercent of them. Integer arithmetic, so 50 % of an odd count is
// decided exactly (3 of 6 keeps, 2 of 5 does not).
func PartialKeepsRows(consolidated, employees int) bool {
	return 100*consolidated >= PartialKeepsPercent*employees
}
