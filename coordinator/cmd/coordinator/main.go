// Command coordinator serves ConsolidationService; `coordinator migrate` brings the
// database schema up to date and exits.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/pkg/schema"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, os.Args[1:]); err != nil {
		logger.Error("coordinator failed", "error", err.Error())
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "migrate":
		return migrate(ctx, logger)
	default:
		return fmt.Errorf("unknown command %q (want migrate)", cmd)
	}
}

func migrate(ctx context.Context, logger *slog.Logger) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return fmt.Errorf("DATABASE_URL is not set")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	applied, err := schema.Migrate(ctx, logger, pool)
	if err != nil {
		return err
	}
	logger.InfoContext(ctx, "schema up to date", "applied", applied)
	return nil
}
