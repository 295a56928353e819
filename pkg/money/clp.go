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
	whole := strconv.FormatUint(u/100, 10)
	frac := u % 100
	b := make([]byte, 0, len(sign)+2+len(whole)+len(whole)/3+3)
	b = append(b, sign...)
	b = append(b, "$ "...)
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b = append(b, '.')
		}
		b = append(b, whole[i])
	}
	b = append(b, ',', byte('0'+frac/10), byte('0'+frac%10))
	return string(b)
}
