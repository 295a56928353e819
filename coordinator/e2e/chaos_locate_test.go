package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// locate says where a closing's differing rows lie, in ids and counts only
// (docs/reliability.md): the libro ids, the run's chunks holding them with each
// chunk's attempts (worker, outcome, whether a commit was refused), the sources
// each row has, and the faults in force during the run, as offsets from its
// start. The rows themselves, written and expected, go to a file of the soak's
// (synthetic data, never a log line), named in the message.
func (s *soak) locate(ctx context.Context, c *chaosClosing, ids []int64, got, want map[int64]oracleEmployee) string {
	slices.Sort(ids)
	var b strings.Builder
	shown := ids[:min(len(ids), 20)]
	fmt.Fprintf(&b, "libro ids %v", shown)

	rows, err := s.pool.Query(ctx, `
		SELECT c.chunk_index, c.first_employee_id, c.last_employee_id, c.employees, c.status,
		       coalesce(c.parent_index, -1),
		       coalesce((SELECT string_agg(a.attempt || ':' || coalesce(a.worker, '?') || ':' || coalesce(a.outcome, 'open') ||
		                  CASE WHEN a.commit_refused_at IS NOT NULL THEN ':refused' ELSE '' END, ' ' ORDER BY a.attempt)
		                 FROM consolidation_chunk_attempt a WHERE a.run_id = c.run_id AND a.chunk_index = c.chunk_index), '')
		FROM consolidation_chunk c
		WHERE c.run_id = $1 AND c.first_employee_id <= $3 AND c.last_employee_id >= $2
		ORDER BY c.chunk_index`, c.runID, ids[0], ids[len(ids)-1])
	if err != nil {
		fmt.Fprintf(&b, "; chunks: %v", err)
	} else {
		for rows.Next() {
			var index, employees, parent int
			var first, last int64
			var status, attempts string
			if err := rows.Scan(&index, &first, &last, &employees, &status, &parent, &attempts); err != nil {
				fmt.Fprintf(&b, "; chunks: %v", err)
				break
			}
			holds := 0
			for _, id := range ids {
				if id >= first && id <= last {
					holds++
				}
			}
			if holds == 0 && status != "split" {
				continue
			}
			fmt.Fprintf(&b, "; chunk %d [%d..%d] %d employees %s parent %d holds %d, attempts [%s]",
				index, first, last, employees, status, parent, holds, attempts)
		}
		rows.Close()
	}

	// The sources each differing row has, counted.
	var withNov, withMov, withAbs int
	if err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM nomina_empleado_cierre_novedades n
		           WHERE n.cierre_id = e.cierre_id AND nomina_rut_canonical(n.rut) = nomina_rut_canonical(e.rut))),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM nomina_movimiento_alta_baja m
		           WHERE nomina_rut_canonical(m.rut) = nomina_rut_canonical(e.rut))),
		       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM nomina_movimiento_ausentismo m
		           WHERE nomina_rut_canonical(m.rut) = nomina_rut_canonical(e.rut)))
		FROM nomina_empleado_cierre e WHERE e.id = ANY($1)`, ids).Scan(&withNov, &withMov, &withAbs); err != nil {
		fmt.Fprintf(&b, "; sources: %v", err)
	} else {
		fmt.Fprintf(&b, "; of them %d with novedades, %d with movements, %d with absences", withNov, withMov, withAbs)
	}

	s.mu.Lock()
	var faults []string
	for _, f := range s.faults {
		if f.overlaps(c.start, c.end) {
			end := "open"
			if !f.end.IsZero() {
				end = f.end.Sub(c.start).Round(10 * time.Millisecond).String()
			}
			faults = append(faults, fmt.Sprintf("%s %s..%s", f.kind, f.start.Sub(c.start).Round(10*time.Millisecond), end))
		}
	}
	s.mu.Unlock()
	fmt.Fprintf(&b, "; run took %s, faults during it (from its start): [%s]",
		c.end.Sub(c.start).Round(10*time.Millisecond), strings.Join(faults, ", "))

	// The rows, for a person to compare.
	type pair struct {
		ID            int64
		Written, Want oracleEmployee
	}
	var pairs []pair
	for _, id := range ids {
		pairs = append(pairs, pair{id, got[id], want[id]})
	}
	dir := os.Getenv("CHAOS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "chaos-artifacts")
	}
	path := filepath.Join(dir, fmt.Sprintf("closing-%d-run-%d.json", c.id, c.runID))
	data, err := json.MarshalIndent(pairs, "", "  ")
	if err == nil {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			err = os.WriteFile(path, data, 0o600)
		}
	}
	if err != nil {
		fmt.Fprintf(&b, "; rows not saved: %v", err)
	} else {
		fmt.Fprintf(&b, "; rows (written and expected) in %s", path)
	}
	return b.String()
}
