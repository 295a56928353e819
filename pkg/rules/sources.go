// Package rules turns one employee's sources into the consolidated record, following
// rules R2 to R8 of the specification. It is pure: no I/O, no clock, no globals, so
// every worker and every test computes exactly the same rows from the same data.
package rules

import (
	"time"

	"github.com/nominacl/consolidation/pkg/money"
)

// Text is a nullable text column. A value that is NULL or only whitespace is
// "missing" in the sense of the rules.
type Text struct {
	String string
	Valid  bool
}

// Some returns a present Text.
func Some(s string) Text { return Text{String: s, Valid: true} }

// Line is one salary concept line of a source, as stored.
type Line struct {
	ID    int64
	Code  string
	Name  string
	Value money.Cents
	Type  string
}

// Libro is one employee row of the payroll book with its concept lines. RUT is the
// canonical RUT; RawRUT is the value as stored.
type Libro struct {
	ID          int64
	RUT         string
	RawRUT      string
	Nombre      Text
	Cargo       Text
	CentroCosto Text
	Lines       []Line
}

// Novedades is the matching row of the recent-changes file with its concept lines.
type Novedades struct {
	ID          int64
	Nombre      Text
	Cargo       Text
	CentroCosto Text
	Lines       []Line
}

// AltaBaja is a hire or termination movement of the employee's RUT.
type AltaBaja struct {
	Tipo  string
	Fecha time.Time
	ID    int64 // nomina_movimiento_alta_baja.id
}

// Ausentismo is an absence of the employee's RUT. A zero Fin means still open.
type Ausentismo struct {
	Inicio time.Time
	Fin    time.Time
	ID     int64 // nomina_movimiento_ausentismo.id
}

// Sources is everything the rules read about one libro employee.
type Sources struct {
	Libro       Libro
	Novedades   *Novedades
	AltasBajas  []AltaBaja
	Ausentismos []Ausentismo
}

// Month is the closing's month.
type Month struct {
	Year  int
	Month time.Month
}

// First is the month's first day (UTC midnight).
func (m Month) First() time.Time { return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC) }

// Last is the month's last day (UTC midnight).
func (m Month) Last() time.Time { return m.First().AddDate(0, 1, -1) }
