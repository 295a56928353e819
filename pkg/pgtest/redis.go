package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nominacl/consolidation/pkg/localdb"
)

var (
	redisOnce sync.Once
	redisURL  string
	redisErr  error
	redisSeq  atomic.Int64
)

// Redis is what a test gets from NewRedis: a server URL and a key prefix no other
// test uses, so tests can share one server without seeing each other's keys.
type Redis struct {
	URL    string
	Prefix string
}

// NewRedis returns the shared Redis of this test binary (TEST_REDIS_URL, or a
// redis-server started on first use) with a key prefix of the test's own.
func NewRedis(t testing.TB) Redis {
	t.Helper()
	redisOnce.Do(func() {
		if u := os.Getenv("TEST_REDIS_URL"); u != "" {
			redisURL = u
			return
		}
		srv, err := localdb.StartRedis(context.Background())
		if err != nil {
			redisErr = err
			return
		}
		onStop(srv.Stop)
		redisURL = srv.URL()
	})
	if redisErr != nil {
		t.Fatalf("pgtest: %v", redisErr)
	}
	if _, err := url.Parse(redisURL); err != nil {
		t.Fatalf("pgtest: TEST_REDIS_URL: %v", err)
	}
	return Redis{URL: redisURL, Prefix: fmt.Sprintf("test%s%d:", randomSuffix(), redisSeq.Add(1))}
}

// Client is a go-redis client of r's server, closed when the test ends. Its keys
// are the test's own when they start with r.Prefix.
func (r Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatalf("pgtest: redis URL: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
