package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args           []string
		code           int
		done           bool
		stdout, stderr string // contained in the output; "" means the output is empty
		rest           []string
	}{
		{args: []string{"-h"}, code: 0, done: true, stdout: "Usage of svc:\n  -size int"},
		{args: []string{"-help"}, code: 0, done: true, stdout: "-version"},
		{args: []string{"-version"}, code: 0, done: true, stdout: "svc (devel) (revision "},
		{args: []string{"-bogus"}, code: 2, done: true, stderr: "flag provided but not defined: -bogus\nUsage of svc:"},
		{args: []string{"-size", "x"}, code: 2, done: true, stderr: `invalid value "x" for flag -size`},
		{args: []string{"-size", "3", "migrate", "-print"}, rest: []string{"migrate", "-print"}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("svc", flag.ContinueOnError)
		fs.Int("size", 1, "a size")
		var stdout, stderr bytes.Buffer
		code, done := ParseArgs(fs, tt.args, &stdout, &stderr)
		if code != tt.code || done != tt.done {
			t.Errorf("%q: code %d done %v, want %d %v", tt.args, code, done, tt.code, tt.done)
		}
		for _, o := range []struct {
			name, got, want string
		}{{"stdout", stdout.String(), tt.stdout}, {"stderr", stderr.String(), tt.stderr}} {
			if (o.want == "") != (o.got == "") || !strings.Contains(o.got, o.want) {
				t.Errorf("%q: %s %q, want it to contain %q", tt.args, o.name, o.got, o.want)
			}
		}
		if !done && strings.Join(fs.Args(), " ") != strings.Join(tt.rest, " ") {
			t.Errorf("%q: arguments left %q, want %q", tt.args, fs.Args(), tt.rest)
		}
	}
}
