package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nominacl/consolidation/coordinator/internal/cli"
	"github.com/nominacl/consolidation/pkg/synth"
)

// generate writes a synthetic closing into DATABASE_URL and prints its id.
func generate(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := cli.NewFlagSet("generate")
	employees := fs.Int("employees", 133, "libro employees")
	year := fs.Int("year", 2026, "closing year")
	month := fs.Int("month", 3, "closing month 1..12")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same closing)")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (default $DATABASE_URL)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *dbURL == "" {
		return cli.UsageErrorf("DATABASE_URL is not set (or pass -database-url)")
	}
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	start := time.Now()
	s, err := synth.Generate(ctx, pool, synth.Config{Employees: *employees, Year: *year, Month: time.Month(*month), Seed: *seed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "closing %d generated in %s: %d employees, %d libro lines, %d novedades (%d lines, %d without libro), %d movements, %d absences, %d discrepancies\n",
		s.ClosingID, time.Since(start).Round(time.Millisecond), s.Employees, s.LibroLines, s.Novedades, s.NovedadesLines,
		s.Unmatched, s.Movements, s.Absences, s.Discrepancies)
	return nil
}
