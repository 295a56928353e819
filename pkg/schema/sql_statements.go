package schema

import "strings"

// splitStatements cuts a migration into its statements at the semicolons that
// end them, skipping those inside quotes, quoted identifiers, dollar-quoted bodies
// and comments. Comments are dropped, and so are empty statements.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); {
		switch c := sql[i]; {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			i += end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				end = len(sql) - i - 4
			}
			i += end + 4
		case c == '\'' || c == '"':
			end := strings.IndexByte(sql[i+1:], c)
			if end < 0 {
				end = len(sql) - i - 2
			}
			cur.WriteString(sql[i : i+end+2])
			i += end + 2
		case c == '$':
			tag := dollarTag(sql[i:])
			if tag == "" {
				cur.WriteByte(c)
				i++
				continue
			}
			end := strings.Index(sql[i+len(tag):], tag)
			if end < 0 {
				end = len(sql) - i - 2*len(tag)
			}
			cur.WriteString(sql[i : i+end+2*len(tag)])
			i += end + 2*len(tag)
		case c == ';':
			flush()
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return out
}

// dollarTag is the $tag$ opening a dollar-quoted string at the start of s, or "".
func dollarTag(s string) string {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9':
		default:
			return ""
		}
	}
	return ""
}
