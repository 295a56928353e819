package e2e_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
)

// chaosFault is one fault of the soak's schedule: its kind, its target (a
// process or hop index, where the kind has one), how long it lasts and the pause
// before the next. The schedule is drawn from CHAOS_SEED alone, so the same seed
// gives the same sequence of faults (how many fit in CHAOS_DURATION depends on
// how long restarts take).
type chaosFault struct {
	kind   string
	target int
	dur    time.Duration
	gap    time.Duration
}

var chaosKinds = []string{
	"worker_kill", "worker_stop", "coordinator_kill", "coordinator_stop",
	"postgres_restart", "postgres_sessions_killed", "redis_restart", "redis_flushall",
	"net_latency", "net_reset", "net_black_hole", "net_slow_read", "estado_write",
}

// chaosSchedule draws faults from the old Celery design, one after another.
func chaosSchedule(seed uint64, workers, coords, hops int) func() chaosFault {
	rng := rand.New(rand.NewPCG(seed, 1))
	return func() chaosFault {
		f := chaosFault{kind: chaosKinds[rng.IntN(len(chaosKinds))],
			dur: time.Duration(500+rng.IntN(5500)) * time.Millisecond,
			gap: time.Duration(1000+rng.IntN(2500)) * time.Millisecond}
		switch f.kind {
		case "worker_kill", "worker_stop":
			f.target = rng.IntN(workers)
		case "coordinator_kill", "coordinator_stop":
			f.target = rng.IntN(coords)
		case "net_latency", "net_reset", "net_black_hole", "net_slow_read":
			f.target = rng.IntN(hops)
		case "estado_write":
			f.target = rng.IntN(1 << 20) // which running closing: this modulo their number
		}
		return f
	}
}

// injectFaults applies the schedule until stop, one fault at a time, and leaves
// every process running and every hop healed.
func (s *soak) injectFaults(stop time.Time) {
	next := chaosSchedule(s.seed, len(s.workers), len(s.coords), len(s.hops))
	ctx := context.Background()
	for {
		f := next()
		time.Sleep(f.gap)
		if !time.Now().Before(stop) {
			return
		}
		kind := f.kind
		if strings.HasPrefix(f.kind, "net_") {
			if f.target < len(s.workers) {
				kind += " coordinator→worker"
			} else {
				kind += " services→" + s.hops[f.target].name
			}
		}
		// Recorded before it is applied (an open span), so a closing checked
		// meanwhile knows of it.
		span := &faultSpan{kind: f.kind, start: time.Now()}
		s.mu.Lock()
		s.faults = append(s.faults, span)
		s.mu.Unlock()
		applied := s.apply(ctx, f)
		s.mu.Lock()
		span.end = time.Now()
		if applied {
			s.faultCount[kind]++
		} else {
			s.faults = slices.DeleteFunc(s.faults, func(x *faultSpan) bool { return x == span })
		}
		s.mu.Unlock()
	}
}

// apply injects one fault and undoes it after f.dur; false when it did not apply
// (an estado write with no closing consolidating).
func (s *soak) apply(ctx context.Context, f chaosFault) bool {
	restart := func(p interface{ Start() error }, name string) {
		for range 50 {
			if err := p.Start(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.violate("%s could not be started again", name)
	}
	switch f.kind {
	case "worker_kill":
		w := s.workers[f.target]
		w.Kill()
		time.Sleep(f.dur / 4)
		restart(w, w.Name)
	case "worker_stop":
		w := s.workers[f.target]
		_ = w.Signal(syscall.SIGSTOP)
		time.Sleep(f.dur)
		_ = w.Signal(syscall.SIGCONT)
	case "coordinator_kill":
		c := s.coords[f.target]
		c.Kill()
		time.Sleep(f.dur / 4)
		restart(c, c.Name)
	case "coordinator_stop":
		c := s.coords[f.target]
		_ = c.Signal(syscall.SIGSTOP)
		time.Sleep(f.dur)
		_ = c.Signal(syscall.SIGCONT)
	case "postgres_restart":
		if err := s.pg.Restart(ctx, f.dur/4); err != nil {
			s.violate("restarting PostgreSQL: %v", err)
		}
	case "postgres_sessions_killed":
		_ = retryDB(ctx, func(ctx context.Context) error {
			_, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name LIKE 'consolidation-%'`)
			return err
		})
	case "redis_restart":
		if err := s.rsrv.Restart(ctx); err != nil {
			s.violate("restarting Redis: %v", err)
		}
	case "redis_flushall":
		if err := s.rdb.FlushAll(ctx).Err(); err != nil {
			s.violate("FLUSHALL: %v", err)
		}
	case "net_latency", "net_black_hole", "net_slow_read":
		s.hops[f.target].inject(netFault(f.kind[4:]), f.dur)
		time.Sleep(f.dur)
	case "net_reset":
		s.hops[f.target].inject(netReset, 0)
	case "estado_write":
		return s.writeEstado(ctx, f.target)
	}
	return true
}

// writeEstado is the application's stale save of a consolidating closing: its
// estado set back to the one it had before the run.
func (s *soak) writeEstado(ctx context.Context, pick int) bool {
	var running []*chaosClosing
	for _, c := range s.snapshotClosings() {
		if c.runID != 0 {
			select {
			case <-c.done:
			default:
				running = append(running, c)
			}
		}
	}
	if len(running) == 0 {
		return false
	}
	c := running[pick%len(running)]
	// Marked under estadoMu with the write, which checkClosing reads under.
	s.estadoMu.Lock()
	defer s.estadoMu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tag, err := s.pool.Exec(wctx, "UPDATE nomina_cierrenomina SET estado = $2 WHERE id = $1 AND estado = $3",
		c.id, domain.EstadoVerificado, domain.EstadoConsolidando)
	if err != nil || tag.RowsAffected() == 0 {
		return false
	}
	c.estadoWritten = true
	return true
}
