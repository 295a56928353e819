// Package storetls is the services' transport to their stores
// (docs/security-model.md, "Transport to the stores"): PostgreSQL over TLS as
// pgx reads it from DATABASE_URL (sslmode=verify-full with sslrootcert), Redis
// over rediss:// verified against REDIS_TLS_CA_FILE, and
// REQUIRE_VERIFIED_DB_TLS, which refuses to connect with anything less.
package storetls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nominacl/consolidation/pkg/redact"
)

// The settings this package reads.
const (
	// EnvRequireVerified refuses a store URL that would connect without TLS or
	// without verifying the server's certificate and name.
	EnvRequireVerified = "REQUIRE_VERIFIED_DB_TLS"
	// EnvRedisCA is the PEM file of the CA that signed Redis's certificate.
	EnvRedisCA = "REDIS_TLS_CA_FILE"
)

// Settings are a service's rules for connecting to its stores.
type Settings struct {
	// RequireVerified is REQUIRE_VERIFIED_DB_TLS: PostgreSQL only with
	// sslmode=verify-full, Redis only with rediss:// and verification on.
	// Default false.
	RequireVerified bool
	// RedisCAFile is REDIS_TLS_CA_FILE: the CA a rediss:// server's certificate
	// is verified against. Default "": the system's roots.
	RedisCAFile string
}

// FromEnv reads REQUIRE_VERIFIED_DB_TLS and REDIS_TLS_CA_FILE with getenv
// (os.Getenv).
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{RedisCAFile: getenv(EnvRedisCA)}
	if v := getenv(EnvRequireVerified); v != "" {
		var err error
		if s.RequireVerified, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("%s %q: want true or false", EnvRequireVerified, v)
		}
	}
	return s, nil
}

// CheckDatabaseURL is nil unless s requires verified TLS and pgx, given url
// (and the PG* variables it also reads, such as PGSSLMODE), could connect
// without TLS or without verifying the server's certificate chain and host
// name: every host pgx may try must be sslmode=verify-full. The error names
// the setting and the problem, never the URL.
func (s Settings) CheckDatabaseURL(url string) error {
	if !s.RequireVerified {
		return nil
	}
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return redact.Err(err)
	}
	tries := []*tls.Config{cfg.TLSConfig}
	for _, f := range cfg.Fallbacks {
		tries = append(tries, f.TLSConfig)
	}
	for _, c := range tries {
		if c == nil {
			return fmt.Errorf("%s=true and the URL lets pgx connect without TLS (sslmode disable, allow or prefer, "+
				"prefer being the default): set sslmode=verify-full and sslrootcert=<the CA file>", EnvRequireVerified)
		}
	}
	for _, c := range tries {
		if c.InsecureSkipVerify {
			return fmt.Errorf("%s=true and the URL's TLS does not verify both the server's certificate and its host name "+
				"(sslmode require or verify-ca): set sslmode=verify-full and sslrootcert=<the CA file>", EnvRequireVerified)
		}
	}
	return nil
}

// RedisTLS applies s to the TLS configuration of a Redis client as
// redis.ParseURL makes it from REDIS_URL (Options.TLSConfig: nil for redis://;
// for rediss://, verified against the system's roots unless skip_verify=true):
// REDIS_TLS_CA_FILE becomes its roots, and with RequireVerified no TLS, or TLS
// with verification off, is refused. Errors name the setting and the problem.
// (Kept apart from go-redis, which only the coordinator links.)
func (s Settings) RedisTLS(cfg *tls.Config) error {
	if s.RedisCAFile != "" {
		if cfg == nil {
			return fmt.Errorf("%s is set but the URL is not rediss:// (TLS)", EnvRedisCA)
		}
		pem, err := os.ReadFile(s.RedisCAFile)
		if err != nil {
			return fmt.Errorf("%s: %w", EnvRedisCA, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s %s: no PEM certificate in it", EnvRedisCA, s.RedisCAFile)
		}
		cfg.RootCAs = roots
	}
	if !s.RequireVerified {
		return nil
	}
	switch {
	case cfg == nil:
		return fmt.Errorf("%s=true and the URL is not rediss:// (it would connect without TLS): use rediss:// and %s",
			EnvRequireVerified, EnvRedisCA)
	case cfg.InsecureSkipVerify:
		return fmt.Errorf("%s=true and the URL turns certificate verification off (skip_verify)", EnvRequireVerified)
	}
	return nil
}
