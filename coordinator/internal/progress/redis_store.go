package progress

import (
	"cmp"
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps run keys in Redis under a prefix (default "consolidacion_"):
// {prefix}run:{id}:done (set of finished chunk indexes), {prefix}run:{id}:progress
// and {prefix}run:{id}:metrics (hashes). It mirrors the run's hashes to the old Celery design's
// hashes of the closing, {prefix}progress_cierre_{closing} and
// {prefix}metrics_cierre_{closing}: with the prefix "consolidacion_" these are the
// consolidacion_progress_cierre_{closing} and consolidacion_metrics_cierre_{closing}
// the payroll application reads. Every key lives Run.KeepFor after its last
// write. A closing's hashes show its latest run: the mirror is written in the same script
// as the run's keys, and never over the hashes of a later run of the closing.
//
// Beside each closing hash the same script writes its value as the payroll
// application's Django cache stores it (DjangoCache): a string key
// {KEY_PREFIX}:{VERSION}:{closing hash name} holding a JSON object, which the
// application's unchanged cache.get("consolidacion_progress_cierre_4") reads.
type RedisStore struct {
	client *redis.Client
	prefix string
	django DjangoCache
}

// DefaultPrefix starts every Redis key of the service unless REDIS_PREFIX says
// otherwise.
const DefaultPrefix = "consolidacion_"

// NewRedisStore builds a RedisStore whose keys start with prefix (DefaultPrefix
// when empty) and whose Django cache keys follow django (Version
// DefaultDjangoCacheVersion when 0).
func NewRedisStore(client *redis.Client, prefix string, django DjangoCache) *RedisStore {
	django.Version = cmp.Or(django.Version, DefaultDjangoCacheVersion)
	return &RedisStore{client: client, prefix: cmp.Or(prefix, DefaultPrefix), django: django}
}

// mirrorLua is the part of every script that writes the closing's hashes.
// current says whether run may write them: the closing's progress hash is
// missing or belongs to run or an earlier run. mirror rewrites the closing's
// progress hash from the run's: the old Celery design's six fields, percent and seconds in
// tenths as the old Celery design shows them ("50", "3.8"), and the run's id; and the same as
// the Django cache's JSON (djangoProgress, with numbers, and the ETA also as
// eta_segundos). A partial run hash (keys lost, not yet published again) is not
// mirrored. djangoMetrics writes a closing's metrics hash as the Django cache's
// JSON: numbers where a field is one.
const mirrorLua = `
local function current(closingProgress, run)
  local cur = tonumber(redis.call('HGET', closingProgress, 'consolidation_id'))
  return cur == nil or cur <= tonumber(run)
end
local function tenths(v)
  local n = tonumber(v)
  if n == nil then return '0' end
  return tostring(math.floor(n * 10 + 0.5) / 10)
end
local function mirror(runProgress, closingProgress, djangoProgress, run, ttl)
  local v = redis.call('HMGET', runProgress, 'total_chunks', 'chunks_completados', 'progreso_porcentaje',
    'empleados_procesados', 'tiempo_transcurrido', 'eta_restante')
  if not v[1] then return end
  redis.call('DEL', closingProgress)
  redis.call('HSET', closingProgress, 'total_chunks', v[1], 'chunks_completados', v[2] or '0',
    'progreso_porcentaje', tenths(v[3]), 'empleados_procesados', v[4] or '0',
    'tiempo_transcurrido', tenths(v[5]), 'eta_restante', tenths(v[6]), 'consolidation_id', run)
  redis.call('PEXPIRE', closingProgress, ttl)
  local eta = tonumber(tenths(v[6]))
  redis.call('SET', djangoProgress, cjson.encode({
    total_chunks = tonumber(v[1]), chunks_completados = tonumber(v[2]) or 0,
    progreso_porcentaje = tonumber(tenths(v[3])), empleados_procesados = tonumber(v[4]) or 0,
    tiempo_transcurrido = tonumber(tenths(v[5])), eta_restante = eta, eta_segundos = eta,
    consolidation_id = tonumber(run)}), 'PX', ttl)
end
local function djangoMetrics(closingMetrics, key, ttl)
  local all = redis.call('HGETALL', closingMetrics)
  local m = {}
  for i = 1, #all, 2 do m[all[i]] = tonumber(all[i + 1]) or all[i + 1] end
  redis.call('SET', key, cjson.encode(m), 'PX', ttl)
end
`

// markDone (ChunkEnded) is idempotent under duplicates: a chunk counts once because the set
// decides, never a bare INCR, and the mirror is rewritten from the counters. A
// split chunk (halves > 0) adds its halves to total_chunks, the first time and
// only to a whole hash (a missing one is left for Publish).
// KEYS: done, run progress, closing progress, Django progress. ARGV: run, ttl, chunk, employees, records, halves.
var markDone = redis.NewScript(mirrorLua + `
local added = redis.call('SADD', KEYS[1], ARGV[3])
local had = redis.call('HEXISTS', KEYS[2], 'total_chunks')
if added == 1 then
  redis.call('HINCRBY', KEYS[2], 'empleados_procesados', ARGV[4])
  redis.call('HINCRBY', KEYS[2], 'registros_creados', ARGV[5])
  if had == 1 and tonumber(ARGV[6]) > 0 then
    redis.call('HINCRBY', KEYS[2], 'total_chunks', ARGV[6])
  end
end
redis.call('HSET', KEYS[2], 'chunks_completados', redis.call('SCARD', KEYS[1]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if current(KEYS[3], ARGV[1]) then mirror(KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2]) end
return {added, had}
`)

// reset (Publish) replaces the done set and writes the progress fields; a new run of the
// closing drops the metrics of the previous one.
// KEYS: done, run progress, closing progress, closing metrics, Django progress, Django metrics.
// ARGV: run, ttl, n, n done chunks, then field/value pairs.
var reset = redis.NewScript(mirrorLua + `
redis.call('DEL', KEYS[1])
local n = tonumber(ARGV[3])
for i = 4, 3 + n, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, 3 + n)))
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if #ARGV > 3 + n then redis.call('HSET', KEYS[2], unpack(ARGV, 4 + n)) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if current(KEYS[3], ARGV[1]) then
  if redis.call('HGET', KEYS[4], 'consolidation_id') ~= ARGV[1] then redis.call('DEL', KEYS[4], KEYS[6]) end
  mirror(KEYS[2], KEYS[3], KEYS[5], ARGV[1], ARGV[2])
end
return 1
`)

// set updates fields of a run hash and mirrors it: "progress" to the closing's
// progress hash, "metrics" (all of it, and the run's id) to the closing's metrics hash;
// each with its Django cache value.
// KEYS: run hash, closing progress, closing metrics, Django progress, Django metrics.
// ARGV: run, ttl, hash, field/value pairs.
var set = redis.NewScript(mirrorLua + `
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if current(KEYS[2], ARGV[1]) then
  if ARGV[3] == 'progress' then
    mirror(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[2])
  elseif ARGV[3] == 'metrics' then
    local all = redis.call('HGETALL', KEYS[1])
    redis.call('DEL', KEYS[3])
    redis.call('HSET', KEYS[3], 'consolidation_id', ARGV[1], unpack(all))
    redis.call('PEXPIRE', KEYS[3], ARGV[2])
    djangoMetrics(KEYS[3], KEYS[5], ARGV[2])
  end
end
return 1
`)

func (r *RedisStore) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

func (r *RedisStore) ChunkEnded(ctx context.Context, run Run, c ChunkEnd) (first, found bool, err error) {
	keys := []string{r.runKey(run.ID, "done"), r.runKey(run.ID, "progress"), r.closingKey(run.ClosingID, "progress"),
		r.djangoKey(run.ClosingID, "progress")}
	res, err := markDone.Run(ctx, r.client, keys, run.ID, run.KeepFor.Milliseconds(), c.Index, c.Employees, c.Records, c.Halves).Int64Slice()
	if err != nil {
		return false, false, err
	}
	return res[0] == 1, res[1] == 1, nil
}

func (r *RedisStore) Publish(ctx context.Context, run Run, done []int, s Snapshot) error {
	fields := s.fields()
	fields["consolidation_id"] = strconv.FormatInt(run.ID, 10)
	fields["closing_id"] = strconv.FormatInt(run.ClosingID, 10)
	keys := []string{r.runKey(run.ID, "done"), r.runKey(run.ID, "progress"),
		r.closingKey(run.ClosingID, "progress"), r.closingKey(run.ClosingID, "metrics"),
		r.djangoKey(run.ClosingID, "progress"), r.djangoKey(run.ClosingID, "metrics")}
	args := make([]any, 0, 3+len(done)+2*len(fields))
	args = append(args, run.ID, run.KeepFor.Milliseconds(), len(done))
	for _, d := range done {
		args = append(args, d)
	}
	args = appendPairs(args, fields)
	return reset.Run(ctx, r.client, keys, args...).Err()
}

func (r *RedisStore) Refresh(ctx context.Context, run Run, s Snapshot) error {
	return r.set(ctx, run, "progress", s.derivedFields())
}

func (r *RedisStore) Progress(ctx context.Context, runID int64) (Snapshot, bool, error) {
	f, err := r.client.HGetAll(ctx, r.runKey(runID, "progress")).Result()
	if err != nil {
		return Snapshot{}, false, err
	}
	s, ok := parseSnapshot(f)
	return s, ok, nil
}

func (r *RedisStore) PublishMetrics(ctx context.Context, run Run, m Metrics) error {
	return r.set(ctx, run, "metrics", m.fields())
}

// set updates fields of the run's "progress" or "metrics" hash and mirrors it to
// the closing's.
func (r *RedisStore) set(ctx context.Context, run Run, hash string, fields map[string]string) error {
	keys := []string{r.runKey(run.ID, hash), r.closingKey(run.ClosingID, "progress"), r.closingKey(run.ClosingID, "metrics"),
		r.djangoKey(run.ClosingID, "progress"), r.djangoKey(run.ClosingID, "metrics")}
	args := appendPairs([]any{run.ID, run.KeepFor.Milliseconds(), hash}, fields)
	return set.Run(ctx, r.client, keys, args...).Err()
}

// DropRun deletes a run's own keys (its done set, progress and metrics hashes),
// when its ledger is pruned. They expire long before that (Run.KeepFor); this removes
// any a longer TTL left. The closing's hashes are left: they show its latest run.
func (r *RedisStore) DropRun(ctx context.Context, runID int64) error {
	return r.client.Del(ctx, r.runKey(runID, "done"), r.runKey(runID, "progress"), r.runKey(runID, "metrics")).Err()
}

func (r *RedisStore) runKey(runID int64, part string) string {
	return fmt.Sprintf("%srun:%d:%s", r.prefix, runID, part)
}

// closingKey names the old Celery design's hash of a closing: "progress" or "metrics".
func (r *RedisStore) closingKey(closingID int64, hash string) string {
	return fmt.Sprintf("%s%s_cierre_%d", r.prefix, hash, closingID)
}

// djangoKey names a closing hash's value in the Django cache: "progress" or "metrics".
func (r *RedisStore) djangoKey(closingID int64, hash string) string {
	return r.django.Key(r.closingKey(closingID, hash))
}

func appendPairs(args []any, fields map[string]string) []any {
	for k, v := range fields {
		args = append(args, k, v)
	}
	return args
}
