package money

import "strconv"

// CLP formats c as Chilean pesos are written for people: "$ 1.234.567,89", with
// dots between thousands and a decimal comma, and a leading minus for a negative
// amount ("-$ 1.234,50"). It is exact at every int64, math.MinInt64 included.
// Machine output (CSV, JSON, SQL) keeps String's "1234567.89".
func (c Cents) CLP() string {
	sign := ""
	u := uint64(c)
	if c < 0 {
		sign = "-"
		u = -u // two's complement: exact even for math.MinInt64
	}
	frac := u % 100
	b := make([]byte, 0, len(sign)+32)
	b = append(b, sign...)
	b = append(b, "$ "...)
	b = appendGrouped(b, u/100)
	b = append(b, ',', byte('0'+frac/10), byte('0'+frac%10))
	return string(b)
}

// Grouped writes a count with the thousands separator of CLP amounts: 20.000,
// so counts printed beside amounts read alike.
func Grouped(n int64) string {
	if n < 0 {
		return string(appendGrouped([]byte{'-'}, -uint64(n)))
	}
	return string(appendGrouped(nil, uint64(n)))
}

func appendGrouped(b []byte, u uint64) []byte {
	whole := strconv.FormatUint(u, 10)
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b = append(b, '.')
		}
		b = append(b, whole[i])
	}
	return b
}
