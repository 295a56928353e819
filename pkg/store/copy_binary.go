package store

import (
	"encoding/binary"
	"math"
	"time"
)

// copyBinary builds the body of a COPY ... FROM STDIN (FORMAT binary) by hand for
// the two result tables. It exists for speed: the generic path (pgx's CopyFrom)
// allocates a row slice per row and goes through math/big for every numeric, which
// cost more CPU than everything else a worker does, on a machine where PostgreSQL
// needs that CPU to take the rows.
type copyBinary struct{ b []byte }

var copyHeader = []byte("PGCOPY\n\377\r\n\000\000\000\000\000\000\000\000\000")

func newCopyBinary(sizeHint int) *copyBinary {
	c := &copyBinary{b: make([]byte, 0, sizeHint)}
	c.b = append(c.b, copyHeader...)
	return c
}

func (c *copyBinary) row(columns int) { c.b = binary.BigEndian.AppendUint16(c.b, uint16(columns)) }

func (c *copyBinary) length(n int) { c.b = binary.BigEndian.AppendUint32(c.b, uint32(n)) }

func (c *copyBinary) null() { c.b = binary.BigEndian.AppendUint32(c.b, math.MaxUint32) }

func (c *copyBinary) int8(v int64) {
	c.length(8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

func (c *copyBinary) int4(v int32) {
	c.length(4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

func (c *copyBinary) bool(v bool) {
	c.length(1)
	if v {
		c.b = append(c.b, 1)
	} else {
		c.b = append(c.b, 0)
	}
}

func (c *copyBinary) text(s string) {
	c.length(len(s))
	c.b = append(c.b, s...)
}

// jsonb is the version byte 1 followed by the JSON text.
func (c *copyBinary) jsonb(raw []byte) {
	c.length(len(raw) + 1)
	c.b = append(c.b, 1)
	c.b = append(c.b, raw...)
}

// postgresEpoch is 2000-01-01, the zero of PostgreSQL's timestamps.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *copyBinary) timestamptz(t time.Time) {
	c.int8(t.Sub(postgresEpoch).Microseconds())
}

// numeric writes cents as a numeric with scale 2: sign, weight and base-10000
// digits, the integer part first, then the cents as one digit (cents·100).
func (c *copyBinary) numeric(cents int64) {
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
	c.length(8 + 2*n)
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(n))
	c.b = binary.BigEndian.AppendUint16(c.b, uint16(int16(weight)))
	c.b = binary.BigEndian.AppendUint16(c.b, sign)
	c.b = binary.BigEndian.AppendUint16(c.b, 2) // dscale
	for _, d := range digits[:n] {
		c.b = binary.BigEndian.AppendUint16(c.b, d)
	}
}

// bytes ends the stream and returns it.
func (c *copyBinary) bytes() []byte {
	return binary.BigEndian.AppendUint16(c.b, math.MaxUint16)
}
