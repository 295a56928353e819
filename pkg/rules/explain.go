package rules

import (
	"cmp"
	"slices"

	"github.com/nominacl/consolidation/pkg/money"
)

// Explanation is how Consolidate decided one employee's record (Explain): one
// decision per concept code of either source, and the movement flags with the
// movements that set them. Recorded where Consolidate decides, so it cannot say
// anything Consolidate did not do.
type Explanation struct {
	Concepts []ConceptDecision // by code
	Flags    []FlagDecision    // es_ingreso, es_finiquito, tiene_ausentismo
}

// ConceptDecision is R5's decision on one concept code.
type ConceptDecision struct {
	Code string // trimmed (R4)
	// The lines of this code in each source, as stored, and their sums (R4).
	LibroLines, NovedadesLines []Line
	LibroValue, NovedadesValue money.Cents
	InLibro, InNovedades       bool
	// Chosen is false when no source gives the code a line (a zero novedades
	// value with no libro line); Value and Source are then empty.
	Chosen      bool
	Value       money.Cents
	Source      string
	Rule        string
	Reason      string
	Discrepancy bool // the value chosen differs from the libro's (R8)
}

// Flag names, as the result columns name them.
const (
	FlagIngreso    = "es_ingreso"
	FlagFiniquito  = "es_finiquito"
	FlagAusentismo = "tiene_ausentismo"
)

// FlagDecision is R7's decision on one movement flag.
type FlagDecision struct {
	Flag   string
	Value  bool
	Rule   string
	Reason string
	// The movements that set it: hires or terminations dated in the month, or
	// absences that overlap it.
	AltasBajas  []AltaBaja
	Ausentismos []Ausentismo
}

// The reasons R5 gives, one per branch of its decision.
const (
	reasonNovedadesWins     = "novedades has a non-zero value for this concept: it takes precedence over the libro"
	reasonOnlyNovedades     = "only novedades has this concept, with a non-zero value: taken from novedades"
	reasonZeroOnlyNovedades = "only novedades has this concept, and its value is zero: no line"
	reasonNoNovedadesRow    = "the employee has no novedades row: the libro value is kept"
	reasonNovedadesLacks    = "novedades has no line of this concept: the libro value is kept"
	reasonNovedadesZero     = "the novedades value is zero: the libro value is kept"
)

func libroKept(hasNovedadesRow, novedadesHasCode bool) string {
	switch {
	case !hasNovedadesRow:
		return reasonNoNovedadesRow
	case !novedadesHasCode:
		return reasonNovedadesLacks
	default:
		return reasonNovedadesZero
	}
}

// concept records R5's decision on code; l or n is nil when that source has no
// line of it, and source is "" when no line was chosen.
func (ex *Explanation) concept(code string, l, n *summed, source string, discrepancy bool, reason string) {
	if ex == nil {
		return
	}
	d := ConceptDecision{Code: code, Chosen: source != "", Source: source, Rule: RuleNovedadesValue,
		Reason: reason, Discrepancy: discrepancy}
	if l != nil {
		d.InLibro, d.LibroLines, d.LibroValue = true, l.lines, l.value
	}
	if n != nil {
		d.InNovedades, d.NovedadesLines, d.NovedadesValue = true, n.lines, n.value
	}
	switch source {
	case SourceLibro:
		d.Value = l.value
	case SourceNovedades:
		d.Value = n.value
	}
	ex.Concepts = append(ex.Concepts, d)
}

func (ex *Explanation) sortConcepts() {
	if ex == nil {
		return
	}
	slices.SortFunc(ex.Concepts, func(a, b ConceptDecision) int { return cmp.Compare(a.Code, b.Code) })
}

// flag adds the decision on a flag, unset until a movement sets it; nil without
// an explanation.
func (ex *Explanation) flag(name string) *FlagDecision {
	if ex == nil {
		return nil
	}
	if ex.Flags == nil {
		ex.Flags = make([]FlagDecision, 0, 3) // the pointers handed out stay valid
	}
	ex.Flags = append(ex.Flags, FlagDecision{Flag: name, Rule: RuleMovements, Reason: flagUnset[name]})
	return &ex.Flags[len(ex.Flags)-1]
}

var (
	flagUnset = map[string]string{
		FlagIngreso:    "no ingreso movement dated in the closing's month",
		FlagFiniquito:  "no finiquito movement dated in the closing's month",
		FlagAusentismo: "no absence overlaps the closing's month",
	}
	flagSet = map[string]string{
		FlagIngreso:    "an ingreso movement is dated in the closing's month",
		FlagFiniquito:  "a finiquito movement is dated in the closing's month",
		FlagAusentismo: "an absence overlaps the closing's month",
	}
)

func (f *FlagDecision) set() {
	f.Value, f.Reason = true, flagSet[f.Flag]
}

func (f *FlagDecision) altaBaja(m AltaBaja) {
	if f == nil {
		return
	}
	f.set()
	f.AltasBajas = append(f.AltasBajas, m)
}

func (f *FlagDecision) ausentismo(a Ausentismo) {
	if f == nil {
		return
	}
	f.set()
	f.Ausentismos = append(f.Ausentismos, a)
}
