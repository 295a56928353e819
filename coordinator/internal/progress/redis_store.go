package progress

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps run keys in Redis under a prefix (default "consolidacion:"):
// {prefix}run:{id}:done (set of finished chunk indexes), {prefix}run:{id}:progress
// and {prefix}run:{id}:metrics (hashes).
type RedisStore struct {
	client *redis.Client
	prefix string
}

// DefaultPrefix starts every Redis key of the service unless REDIS_PREFIX says
// otherwise.
const DefaultPrefix = "consolidacion:"

// NewRedisStore builds a RedisStore whose keys start with prefix (DefaultPrefix
// when empty).
func NewRedisStore(client *redis.Client, prefix string) *RedisStore {
	return &RedisStore{client: client, prefix: cmp.Or(prefix, DefaultPrefix)}
}

// markDone is idempotent under duplicates: a chunk counts once because the set
// decides, never a bare INCR.
var markDone = redis.NewScript(`
local added = redis.call('SADD', KEYS[1], ARGV[1])
local had = redis.call('HEXISTS', KEYS[2], 'total_chunks')
if added == 1 then
  redis.call('HINCRBY', KEYS[2], 'empleados_procesados', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'registros_creados', ARGV[3])
end
redis.call('HSET', KEYS[2], 'chunks_completados', redis.call('SCARD', KEYS[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {added, had}
`)

func (r *RedisStore) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

func (r *RedisStore) MarkDone(ctx context.Context, runID int64, chunk, employees, records int, ttl time.Duration) (bool, bool, error) {
	res, err := markDone.Run(ctx, r.client, []string{key(r.prefix, runID, "done"), key(r.prefix, runID, "progress")},
		chunk, employees, records, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return false, false, err
	}
	return res[0] == 1, res[1] == 1, nil
}

func (r *RedisStore) Reset(ctx context.Context, runID int64, done []int, fields map[string]string, ttl time.Duration) error {
	doneKey, progKey := key(r.prefix, runID, "done"), key(r.prefix, runID, "progress")
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, doneKey)
		if len(done) > 0 {
			members := make([]any, len(done))
			for i, d := range done {
				members[i] = d
			}
			p.SAdd(ctx, doneKey, members...)
			p.PExpire(ctx, doneKey, ttl)
		}
		p.HSet(ctx, progKey, fields)
		p.PExpire(ctx, progKey, ttl)
		return nil
	})
	return err
}

func (r *RedisStore) Set(ctx context.Context, runID int64, hash string, fields map[string]string, ttl time.Duration) error {
	k := key(r.prefix, runID, hash)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, fields)
		p.PExpire(ctx, k, ttl)
		return nil
	})
	return err
}

func (r *RedisStore) Get(ctx context.Context, runID int64, hash string) (map[string]string, error) {
	return r.client.HGetAll(ctx, key(r.prefix, runID, hash)).Result()
}

func key(prefix string, runID int64, part string) string {
	return fmt.Sprintf("%srun:%d:%s", prefix, runID, part)
}
