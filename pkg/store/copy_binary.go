package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nominacl/consolidation/pkg/money"
)

// copyBinary builds the body of a COPY ... FROM STDIN (FORMAT binary) by hand for
// the two result tables. It exists for speed: the generic path (pgx's CopyFrom)
// allocates a row slice per row and goes through math/big for every numeric, which
// cost more CPU than everything else a worker does, on a machine where PostgreSQL
// needs that CPU to take the rows. Each method returns the body with its value
// appended, like append: a value kept in a local variable stays off the heap, so
// its writes cost no GC write barrier.
type copyBinary []byte

var copyHeader = []byte("PGCOPY\n\377\r\n\000\000\000\000\000\000\000\000\000")

func newCopyBinary(sizeHint int) copyBinary {
	return append(make(copyBinary, 0, sizeHint), copyHeader...)
}

// copyColumn is one column of a result table whose rows are written from values
// of type R and read back into values of type S: its name, the function that
// appends its value for a row to a COPY, and where a SELECT of it scans into. A
// table of them drives the COPY's column list and values and the read's SELECT
// list and Scan, so adding a column is one line (docs/architecture.md, "Where a
// change goes"); the functions are package-level values, so a row costs no
// allocation.
type copyColumn[R, S any] struct {
	name   string
	encode func(c copyBinary, r *R) copyBinary
	// scan is the field a SELECT of the column is read into; nil when the
	// column is written and never read back.
	scan func(s *S) any
	// selectAs is what a SELECT reads for the column; "" means the name.
	selectAs string
}

// columnList is the column list of a COPY statement: the names, comma-separated.
func columnList[R, S any](columns []copyColumn[R, S]) string {
	names := make([]string, len(columns))
	for i, col := range columns {
		names[i] = col.name
	}
	return strings.Join(names, ", ")
}

// selectList is the SELECT list of the columns read back, in the table's order,
// the order scanTargets gives their targets in.
func selectList[R, S any](columns []copyColumn[R, S]) string {
	var exprs []string
	for _, col := range columns {
		if col.scan != nil {
			exprs = append(exprs, cmp.Or(col.selectAs, col.name))
		}
	}
	return strings.Join(exprs, ", ")
}

// scanTargets are the fields of s a row of selectList scans into.
func scanTargets[R, S any](columns []copyColumn[R, S], s *S) []any {
	targets := make([]any, 0, len(columns))
	for _, col := range columns {
		if col.scan != nil {
			targets = append(targets, col.scan(s))
		}
	}
	return targets
}

// appendRow appends the row made from r, one value for each column.
func appendRow[R, S any](c copyBinary, columns []copyColumn[R, S], r *R) copyBinary {
	c = c.row(len(columns))
	for i := range columns {
		c = columns[i].encode(c, r)
	}
	return c
}

func (c copyBinary) row(columns int) copyBinary {
	return binary.BigEndian.AppendUint16(c, uint16(columns))
}

func (c copyBinary) length(n int) copyBinary { return binary.BigEndian.AppendUint32(c, uint32(n)) }

func (c copyBinary) null() copyBinary { return binary.BigEndian.AppendUint32(c, math.MaxUint32) }

func (c copyBinary) int8(v int64) copyBinary {
	return binary.BigEndian.AppendUint64(c.length(8), uint64(v))
}

func (c copyBinary) int4(v int32) copyBinary {
	return binary.BigEndian.AppendUint32(c.length(4), uint32(v))
}

func (c copyBinary) bool(v bool) copyBinary {
	if v {
		return append(c.length(1), 1)
	}
	return append(c.length(1), 0)
}

func (c copyBinary) text(s string) copyBinary {
	return append(c.length(len(s)), s...)
}

// jsonb is the version byte 1 followed by the JSON text.
func (c copyBinary) jsonb(raw []byte) copyBinary {
	c = append(c.length(len(raw)+1), 1)
	return append(c, raw...)
}

// postgresEpoch is 2000-01-01, the zero of PostgreSQL's timestamps, in Unix seconds.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// timestamptz writes microseconds since postgresEpoch, rounded down as pgx does. It
// counts from Unix seconds, not with t.Sub, whose Duration saturates 292 years
// from the epoch (and rounds toward zero before it).
func (c copyBinary) timestamptz(t time.Time) copyBinary {
	return c.int8((t.Unix()-postgresEpoch)*1_000_000 + int64(t.Nanosecond()/1000))
}

// numeric writes cents as a numeric with scale 2: sign, weight and base-10000
// digits, the integer part first, then the cents as one digit (cents·100).
func (c copyBinary) numeric(cents int64) copyBinary {
	var sign uint16
	u := uint64(cents)
	if cents < 0 {
		sign, u = 0x4000, uint64(-cents)
	}
	whole, frac := u/100, u%100
	var digits [8]uint16
	n := 0
	var intDigits [6]uint16
	ni := 0
	for w := whole; w > 0; w /= 10000 {
		intDigits[ni] = uint16(w % 10000)
		ni++
	}
	for i := ni - 1; i >= 0; i-- {
		digits[n] = intDigits[i]
		n++
	}
	weight := ni - 1
	if frac != 0 {
		if ni == 0 {
			weight = -1
		}
		digits[n] = uint16(frac * 100)
		n++
	}
	// Trailing zero digits are not stored.
	for n > 0 && digits[n-1] == 0 {
		n--
	}
	if n == 0 {
		weight, sign = 0, 0
	}
	c = c.length(8 + 2*n)
	c = binary.BigEndian.AppendUint16(c, uint16(n))
	c = binary.BigEndian.AppendUint16(c, uint16(int16(weight)))
	c = binary.BigEndian.AppendUint16(c, sign)
	c = binary.BigEndian.AppendUint16(c, 2) // dscale
	for _, d := range digits[:n] {
		c = binary.BigEndian.AppendUint16(c, d)
	}
	return c
}

// numericCents decodes a numeric in PostgreSQL's binary form (as a result column
// or a COPY field carries it) into cents, exactly: an amount with more than two
// decimals, NaN, an infinity or an amount outside money's range is an error. It
// is numeric's inverse, and spares the server a text conversion per value.
func numericCents(b []byte) (money.Cents, error) {
	if len(b) < 8 {
		return 0, errors.New("numeric: short value")
	}
	n := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	if len(b) != 8+2*n {
		return 0, errors.New("numeric: length does not match its digits")
	}
	if sign != 0 && sign != 0x4000 {
		return 0, errors.New("numeric: not a finite number")
	}
	// Cents are below 10^12 (money.Parse: at most 10 integer digits), so the
	// highest base-10000 digit allowed is 10^4 (weight 2).
	const limit = 1_000_000_000_000
	var cents int64
	for i := range n {
		d := int64(binary.BigEndian.Uint16(b[8+2*i:]))
		if d > 9999 {
			return 0, errors.New("numeric: digit out of range")
		}
		switch e := weight - i; {
		case e > 2:
			if d != 0 {
				return 0, fmt.Errorf("numeric: %w", money.ErrOutOfRange)
			}
		case e >= 0:
			cents += d * 100 * pow10000[e]
		case e == -1:
			if d%100 != 0 {
				return 0, errors.New("numeric: more than two decimals")
			}
			cents += d / 100
		default:
			if d != 0 {
				return 0, errors.New("numeric: more than two decimals")
			}
		}
		if cents >= limit {
			return 0, fmt.Errorf("numeric: %w", money.ErrOutOfRange)
		}
	}
	if sign == 0x4000 {
		cents = -cents
	}
	return money.Cents(cents), nil
}

var pow10000 = [3]int64{1, 10_000, 100_000_000}

// bytes ends the stream and returns it.
func (c copyBinary) bytes() []byte {
	return binary.BigEndian.AppendUint16(c, math.MaxUint16)
}
