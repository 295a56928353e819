package config

import (
	"context"
	"log/slog"

	"github.com/nominacl/consolidation/pkg/redact"
)

// redactHandler passes every string and error attribute of a record through
// pkg/redact before it is written, so no log line carries a connection URL's
// password or a PostgreSQL message (which may quote a row's values), whoever
// logged it.
type redactHandler struct{ slog.Handler }

// Handle rewrites r's message and attributes and passes the copy on.
func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, redact.Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

// WithAttrs redacts attributes fixed on a derived logger too.
func (h redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		safe[i] = redactAttr(a)
	}
	return redactHandler{h.Handler.WithAttrs(safe)}
}

// WithGroup keeps the derived handler redacting.
func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redact.Text(v.String()))
	case slog.KindGroup:
		group := v.Group()
		safe := make([]any, len(group))
		for i, g := range group {
			safe[i] = redactAttr(g)
		}
		return slog.Group(a.Key, safe...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, redact.Error(err))
		}
	}
	return a
}
