// Package config reads settings from the environment and names every missing or
// bad variable at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// Env collects settings and the problems found reading them.
type Env struct {
	errs []error
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (e *Env) Required(name string) string {
	v := os.Getenv(name)
	if v == "" {
		e.errs = append(e.errs, fmt.Errorf("%s is not set", name))
	}
	return v
}

// Int returns the variable as an integer ≥ minimum, or def when unset.
func (e *Env) Int(name string, def, minimum int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < minimum {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want an integer ≥ %d", name, v, minimum))
		return def
	}
	return n
}

// Duration returns the variable as a positive duration ("90s", "5m"), or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want a positive duration such as 90s or 5m", name, v))
		return def
	}
	return d
}

// Err joins every problem found, or is nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Logger is the JSON logger of a service at the given level (debug, info, warn,
// error; anything else, or empty, is info). Every line names the service and the
// build's version (BuildInfo), and a line logged with a context that carries a span its
// trace_id and span_id.
func Logger(service, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(redactHandler{traceHandler{slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})}}).With("service", service, "version", BuildInfo().Version)
}
