package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// ParseArgs parses a binary's command line into fs (made with
// flag.ContinueOnError), adding the -version every binary has. When the process
// should stop there it returns the exit code and done: -h prints fs's usage on
// stdout (0), -version prints "NAME VERSION (revision …)" on stdout (0), and a bad
// flag prints the problem and the usage on stderr (2).
func ParseArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	version := fs.Bool("version", false, "print the version and VCS revision, and exit")
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.WriteTo(stdout)
		return 0, true
	case err != nil:
		_, _ = out.WriteTo(stderr)
		return 2, true
	case *version:
		fmt.Fprintln(stdout, fs.Name(), BuildInfo())
		return 0, true
	}
	return 0, false
}
