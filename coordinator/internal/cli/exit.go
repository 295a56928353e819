package cli

import (
	"errors"
	"flag"
	"fmt"

	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// cierrectl's exit codes (README, "cierrectl"). A command that follows a run to
// its end (consolidate, watch) exits with how the run ended.
const (
	// ExitOK: the command did what was asked; a followed run ended
	// datos_consolidados.
	ExitOK = 0
	// ExitFailed: the command failed (the coordinator refused or could not be
	// reached), or a followed run ended error_consolidacion, cancelada,
	// error_recursos or timeout.
	ExitFailed = 1
	// ExitUsage: the command line was wrong (an unknown command or flag, a
	// missing or conflicting flag, a confirmation a script did not give with -yes).
	ExitUsage = 2
	// ExitPartial: a followed run ended consolidacion_parcial: some employees
	// failed, the rest are consolidated (retry them with -retry-failed).
	ExitPartial = 3
)

// exitError is an error that carries its exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a wrong command line: exit code ExitUsage.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// runEndError is nil when a run ended datos_consolidados, and otherwise an error
// carrying the exit code of its end: ExitPartial for consolidacion_parcial,
// ExitFailed for any other. A run not yet ended is ExitFailed too: whoever
// followed it did not see it end.
func runEndError(c *consolidationv1.Consolidation) error {
	estado := domain.Estado(c.GetEstado())
	if estado == domain.EstadoConsolidados {
		return nil
	}
	code := ExitFailed
	if estado == domain.EstadoParcial {
		code = ExitPartial
	}
	err := fmt.Errorf("consolidation %d ended %s", c.GetConsolidationId(), estado)
	if c.GetError() != "" {
		err = fmt.Errorf("%w: %s", err, c.GetError())
	}
	return &exitError{code: code, err: err}
}

// flagError is a command's flags failing to parse (parseFlags): -h asks for the
// usage (ExitOK), anything else is ExitUsage. usage is what the flag package
// printed: the problem and the command's flags.
type flagError struct {
	err   error
	usage string
	fs    *flag.FlagSet
}

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// exitCode is the exit code of a command's error.
func exitCode(err error) int {
	var ee *exitError
	var fe *flagError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &fe):
		return ExitUsage
	case errors.As(err, &ee):
		return ee.code
	default:
		return ExitFailed
	}
}
