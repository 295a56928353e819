package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nominacl/consolidation/pkg/config"
	"github.com/nominacl/consolidation/pkg/redact"
)

// Command is one command of a Program: it parses args with ParseFlags and
// returns an error carrying its exit code (exitCode), nil for ExitOK.
type Command = func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Program is a command-line tool made of commands: cierrectl (Main) and the
// development tool devcluster share its help, version, completion, flag parsing
// and exit codes, so both behave alike.
type Program struct {
	// Name is the binary's name, as usage and errors print it.
	Name string
	// Usage is the text of `NAME help`.
	Usage string
	// Commands by name; "completion", "help" and "version" are the Program's own.
	Commands map[string]Command
}

// Main runs the command args name and returns the process exit code (ExitOK,
// ExitFailed, ExitUsage, ExitPartial): a usage error is ExitUsage, whatever
// the command; `help X` is ExitOK for every command X.
func (p Program) Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, p.Usage)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) == 1 {
			fmt.Fprint(stdout, p.Usage)
			return ExitOK
		}
		if len(args) > 2 {
			fmt.Fprintf(stderr, "%s help: want one command, got %q\n", p.Name, args[1:])
			return ExitUsage
		}
		switch args[1] {
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, p.Usage)
			return ExitOK
		case "version", "-version", "--version":
			fmt.Fprintf(stdout, "Usage of version:\n  %s version (or -version) prints the build's version and VCS revision\n", p.Name)
			return ExitOK
		}
		args = []string{args[1], "-h"} // help COMMAND
	case "-version", "--version", "version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "%s version: unexpected argument %q\n", p.Name, args[1])
			return ExitUsage
		}
		fmt.Fprintln(stdout, p.Name, config.BuildInfo())
		return ExitOK
	}
	cmds := p.commands()
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", p.Name, args[0], p.Usage)
		return ExitUsage
	}
	err := cmd(ctx, args[1:], stdout, stderr)
	code := exitCode(err)
	var fe *flagError
	switch {
	case err == nil:
	case errors.As(err, &fe) && code == ExitOK:
		fmt.Fprint(stdout, fe.usage)
	case errors.As(err, &fe):
		fmt.Fprint(stderr, fe.usage)
	case code != ExitOK:
		fmt.Fprintf(stderr, "%s %s: %s\n", p.Name, args[0], redact.Text(describe(err)))
	}
	return code
}

// commands is p.Commands and completion.
func (p Program) commands() map[string]Command {
	cmds := make(map[string]Command, len(p.Commands)+1)
	for name, c := range p.Commands {
		cmds[name] = c
	}
	cmds["completion"] = func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		return completion(ctx, p.Name, args, stdout, cmds)
	}
	return cmds
}

// NewFlagSet is a command's flag set. Parse it with ParseFlags.
func NewFlagSet(name string) *flag.FlagSet { return newFlagSet(name) }

// ParseFlags parses a command's flags and takes no positional argument: a bad
// flag or an argument is ExitUsage, -h the command's flags with ExitOK.
func ParseFlags(fs *flag.FlagSet, args []string) error { return parseFlags(fs, args) }

// UsageErrorf is a wrong command line: exit code ExitUsage.
func UsageErrorf(format string, a ...any) error { return usageErrorf(format, a...) }
