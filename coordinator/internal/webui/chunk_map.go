package webui

import (
	"fmt"
	"slices"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// StragglerFactor: a chunk is a straggler when it runs (or ran) longer than this
// many times the median duration of the run's succeeded chunks.
const StragglerFactor = 3

// stragglerFloor keeps chunks of a fast run from being called stragglers for a
// second's noise.
const stragglerFloor = 2 * time.Second

// minMedianChunks: fewer succeeded chunks than this give no median to judge by.
const minMedianChunks = 3

// maxListedStragglers bounds the stragglers listed under the map.
const maxListedStragglers = 20

// chunkMap is a run's chunk map as the page draws it.
type chunkMap struct {
	Cells      []chunkCell
	Median     time.Duration // of the succeeded chunks; 0 when too few
	Stragglers int
	// StragglerTitles describe the stragglers (at most maxListedStragglers), for
	// the list under the map that a keyboard or a screen reader reaches.
	StragglerTitles []string
	Counts          []statusCount // chunks per status, in the legend's order
}

type chunkCell struct {
	Index     int
	Status    domain.ChunkStatus
	Label     string
	Straggler bool
	Split     bool // a half of a split chunk
	Title     string
}

type statusCount struct {
	Status domain.ChunkStatus
	Label  string
	N      int
}

var legendOrder = []domain.ChunkStatus{domain.ChunkSucceeded, domain.ChunkRunning, domain.ChunkPending,
	domain.ChunkFailed, domain.ChunkSplit}

// buildChunkMap turns the ledger's chunks into cells at now: each says its state,
// attempts, worker and duration (a running one: since its dispatch), whether it
// is a half of a split, and whether it is a straggler.
func buildChunkMap(cells []store.ChunkCell, now time.Time) chunkMap {
	var durations []time.Duration
	for _, c := range cells {
		if c.Status == domain.ChunkSucceeded {
			durations = append(durations, seconds(c.DurationSeconds))
		}
	}
	var m chunkMap
	if len(durations) >= minMedianChunks {
		slices.Sort(durations)
		m.Median = durations[len(durations)/2]
	}
	counts := map[domain.ChunkStatus]int{}
	for _, c := range cells {
		counts[c.Status]++
		took := seconds(c.DurationSeconds)
		if c.Status == domain.ChunkRunning && c.DispatchedAt != nil {
			took = now.Sub(*c.DispatchedAt)
		}
		cell := chunkCell{Index: c.Index, Status: c.Status, Label: chunkLabel(c.Status), Split: c.ParentIndex != nil}
		cell.Straggler = m.Median > 0 && took > max(StragglerFactor*m.Median, stragglerFloor) &&
			(c.Status == domain.ChunkRunning || c.Status == domain.ChunkSucceeded)
		if cell.Straggler {
			m.Stragglers++
		}
		cell.Title = fmt.Sprintf("Chunk %d · %s · %s empleados · %d intentos", c.Index, cell.Label, count(c.Employees), c.Attempts)
		if c.Worker != "" {
			cell.Title += " · worker " + c.Worker
		}
		if took > 0 {
			cell.Title += " · " + duration(took)
		}
		if cell.Split {
			cell.Title += fmt.Sprintf(" · mitad del chunk %d", *c.ParentIndex)
		}
		if cell.Straggler {
			cell.Title += " · rezagado"
			if len(m.StragglerTitles) < maxListedStragglers {
				m.StragglerTitles = append(m.StragglerTitles, cell.Title)
			}
		}
		m.Cells = append(m.Cells, cell)
	}
	for _, s := range legendOrder {
		m.Counts = append(m.Counts, statusCount{Status: s, Label: chunkLabel(s), N: counts[s]})
	}
	return m
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
