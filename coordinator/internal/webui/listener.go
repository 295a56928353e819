package webui

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

// ServeConfig is the dashboard's listener (UI_ADDR) and who it believes.
type ServeConfig struct {
	Addr     string // UI_ADDR
	Security grpcx.Security
	Config   Config // Authorization is filled from Security
}

// shutdownWait bounds how long a stopping dashboard waits for its requests.
const shutdownWait = 5 * time.Second

// Serve serves the dashboard on cfg.Addr until ctx ends: HTTPS with the gRPC
// port's certificate when TLS files are set (a client certificate identifies
// its holder), else plain HTTP. It returns once listening, with a function that
// waits for the server to stop after ctx has ended. Event streams end with ctx
// (the server's shutdown does not wait for those over HTTP/1.x: their
// connections were taken from it).
func Serve(ctx context.Context, logger *slog.Logger, cfg ServeConfig, e *engine.Engine, workers workerStates) (wait func(), err error) {
	tlsConfig, err := cfg.Security.DashboardTLS()
	if err != nil {
		return nil, err
	}
	if cfg.Config.Authorization, err = cfg.Security.Authorization(logger); err != nil {
		return nil, err
	}
	d, err := NewDashboard(logger, cfg.Config, e, workers)
	if err != nil {
		return nil, err
	}
	d.base = ctx // the runs' event writers end with the server, and their taken connections with them
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: d, TLSConfig: tlsConfig, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// An HTTP/2 connection that takes no byte for writeWait is closed, with
		// the event streams of the tabs on it (their browser reconnects).
		HTTP2: &http.HTTP2Config{WriteByteTimeout: writeWait}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			logger.ErrorContext(ctx, "dashboard stopped", "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownWait)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.InfoContext(ctx, "dashboard serving", "addr", l.Addr().String(), "tls", tlsConfig != nil,
		"proxy_header", d.cfg.ProxyHeader, "trusted_proxies", len(d.cfg.TrustedProxies))
	return func() { <-done }, nil
}
