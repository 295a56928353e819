package launch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/nominacl/consolidation/pkg/localdb"
)

// StoresConfig says which PostgreSQL database and Redis a local cluster runs on.
type StoresConfig struct {
	// DatabaseURL is an existing database; "" starts a throwaway PostgreSQL and
	// creates Database in it.
	DatabaseURL string
	Database    string
	// RedisURL is an existing Redis; "" starts a throwaway redis-server.
	RedisURL string
	// PostgresSettings are extra settings ("name=value") of a throwaway
	// PostgreSQL (the benchmark's pg_stat_statements).
	PostgresSettings []string
}

// Stores are the PostgreSQL database and the Redis of a local cluster.
type Stores struct {
	DatabaseURL string
	RedisURL    string
	stops       []func()
}

// StartStores starts what cfg does not name. On an error it stops whatever it
// started.
func StartStores(ctx context.Context, cfg StoresConfig) (_ *Stores, err error) {
	s := &Stores{DatabaseURL: cfg.DatabaseURL, RedisURL: cfg.RedisURL}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.DatabaseURL == "" {
		pg, err := localdb.StartPostgres(ctx, cfg.PostgresSettings...)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, pg.Stop)
		admin, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err != nil {
			return nil, err
		}
		_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.Database}.Sanitize())
		admin.Close(ctx)
		if err != nil {
			return nil, err
		}
		s.DatabaseURL = pg.URL(cfg.Database)
	}
	if s.RedisURL == "" {
		rs, err := localdb.StartRedis(ctx)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, rs.Stop)
		s.RedisURL = rs.URL()
	}
	return s, nil
}

// Stop stops the servers StartStores started, the last started first.
func (s *Stores) Stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// Migrate runs `coordinator migrate` from binDir on databaseURL, its output
// going to logPath. databaseURL reaches PostgreSQL directly, whatever
// DATABASE_POOLER the environment gives the services.
func Migrate(ctx context.Context, binDir, databaseURL, logPath string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "coordinator"), "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL, "DATABASE_POOLER=none")
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(logPath, out, 0o644)
	if err != nil {
		return fmt.Errorf("coordinator migrate: %v: %s", err, out)
	}
	return nil
}
