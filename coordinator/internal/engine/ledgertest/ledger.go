// Package ledgertest is the engine's ledger in memory, for the drive loop's
// tests (docs/architecture.md, "The ledger seam"): runs with their leases
// (epochs, expiry on an injectable clock), chunks and their attempt tokens,
// splits, cancels, the run's end and the steps after it, with the semantics of
// the PostgreSQL statements of pkg/store. The engine's conformance suite runs the
// same cases against this ledger and PostgreSQL, so the two cannot drift. It also
// stands for the result tables, as far as a run's control totals need them: a
// worker's commit (CommitChunk) writes one row an employee.
//
// It is linked into no shipped binary (coordinator/cmd's dependency test).
package ledgertest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/money"
	"github.com/nominacl/consolidation/pkg/store"
)

// Row is what a commit wrote for one employee: the consolidated employee row and
// its concept rows (Records counts both, as store.WriteSummary does).
type Row struct {
	RunID      int64
	Records    int
	Haberes    money.Cents
	Descuentos money.Cents
}

// RowOf is the row the in-memory workers consolidate for libro employee id: an
// employee row and two concept lines, with amounts derived from the id, so
// that a row written twice or lost shows in the totals.
func RowOf(runID, employeeID int64) Row {
	return Row{RunID: runID, Records: 3, Haberes: money.Cents(100_000 + employeeID), Descuentos: money.Cents(10_000 + employeeID%7)}
}

type chunk struct {
	store.Chunk
	token int64 // 0: none (NULL)
}

type attempt struct {
	index, number int
	token         int64
	worker        string
	finished      bool
	outcome       domain.Outcome
	err           string
}

type run struct {
	store.Run
	previous domain.Estado

	leaseOwner   string // "": nobody holds it
	leaseEpoch   int64
	leaseExpires time.Time

	claimedBy    string
	claimedUntil time.Time // zero: no live claim
	afterEndDone bool

	chunks   []*chunk // by index
	attempts []*attempt
}

type closing struct {
	estado    domain.Estado
	employees []int64 // libro ids, ascending
	rows      map[int64]Row
	writes    map[int64]int // how many times each employee's row was written
}

// Ledger is the engine's ledger in memory. Its zero value is not usable: New.
type Ledger struct {
	clock *Clock

	mu       sync.Mutex
	runs     map[int64]*run
	closings map[int64]*closing
	nextID   int64
}

// New is an empty ledger on clock.
func New(clock *Clock) *Ledger {
	return &Ledger{clock: clock, runs: map[int64]*run{}, closings: map[int64]*closing{}}
}

// AddClosing registers a closing in estado with the given libro employee ids
// and returns its id: what StartRun and SplitChunk read of it.
func (l *Ledger) AddClosing(estado domain.Estado, employees []int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	ids := slices.Clone(employees)
	slices.Sort(ids)
	l.closings[l.nextID] = &closing{estado: estado, employees: ids, rows: map[int64]Row{}, writes: map[int64]int{}}
	return l.nextID
}

// ClosingEstado is the closing's estado.
func (l *Ledger) ClosingEstado(closingID int64) domain.Estado {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closings[closingID].estado
}

// Rows are the closing's consolidated rows, by libro employee id.
func (l *Ledger) Rows(closingID int64) map[int64]Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.closings[closingID].rows)
}

// Writes counts, by libro employee id, the rows commits wrote for the closing,
// removed or not: a row written twice shows as 2.
func (l *Ledger) Writes(closingID int64) map[int64]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.closings[closingID].writes)
}

// Lease is the run's lease as stored: its owner ("" when released) and epoch.
func (l *Ledger) Lease(runID int64) (owner string, epoch int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.runs[runID]
	return r.leaseOwner, r.leaseEpoch
}

// AfterEndDone says whether the steps after the run's end were recorded done.
func (l *Ledger) AfterEndDone(runID int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.runs[runID].afterEndDone
}

// Attempts lists the outcome of every attempt of the run's chunk, in order (""
// while open).
func (l *Ledger) Attempts(runID int64, index int) []domain.Outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.Outcome
	for _, a := range l.runs[runID].attempts {
		if a.index == index {
			out = append(out, a.outcome)
		}
	}
	return out
}

func (l *Ledger) Ping(context.Context) error { return nil }

// StartRun stores a run and its chunk plan, the closing moved to
// consolidando_datos from nr.PreviousEstado (store.StartRun).
func (l *Ledger) StartRun(_ context.Context, nr store.NewRun) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.closings[nr.ClosingID]
	if !ok {
		return 0, fmt.Errorf("moving closing %d to %s: %w", nr.ClosingID, domain.EstadoConsolidando, store.ErrNotFound)
	}
	for _, r := range l.runs {
		if r.ClosingID == nr.ClosingID && !r.Finished() {
			return 0, &store.ActiveRunError{RunID: r.ID}
		}
	}
	if k.estado != nr.PreviousEstado {
		return 0, store.ErrClosingStateChanged
	}
	k.estado = domain.EstadoConsolidando
	l.nextID++
	r := &run{Run: store.Run{ID: l.nextID, ClosingID: nr.ClosingID, Mode: nr.Mode, Policy: nr.Policy,
		ChunkSize: nr.ChunkSize, PreviousEstado: nr.PreviousEstado, Estado: domain.EstadoConsolidando,
		TotalChunks: len(nr.Chunks), TotalEmployees: nr.TotalEmployees, UnmatchedNovedades: nr.UnmatchedNovedades,
		StartedAt: l.clock.Now(), Deadline: nr.Deadline, RequestedBy: nr.RequestedBy, RequestID: nr.RequestID}}
	for _, c := range nr.Chunks {
		r.chunks = append(r.chunks, &chunk{Chunk: store.Chunk{RunID: r.ID, Index: c.Index, FirstID: c.FirstID,
			LastID: c.LastID, Employees: c.Employees, Status: domain.ChunkPending}})
	}
	l.runs[r.ID] = r
	return r.ID, nil
}

// GetRun reads a run with its chunks added up (store.GetRun).
func (l *Ledger) GetRun(_ context.Context, runID int64) (store.Run, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	if !ok {
		return store.Run{}, fmt.Errorf("reading consolidation %d: %w", runID, store.ErrNotFound)
	}
	return r.summed(), nil
}

func (r *run) summed() store.Run {
	s := r.Run
	s.ChunksSucceeded, s.ChunksFailed, s.ChunksSplit, s.ChunksCancelled = 0, 0, 0, 0
	s.EmployeesCancelled, s.EmployeesDone, s.Records, s.EmployeesRemoved = 0, 0, 0, 0
	s.EmployeesFailed, s.EmployeesWorkerDied = 0, 0
	for _, c := range r.chunks {
		switch c.Status {
		case domain.ChunkSucceeded:
			s.ChunksSucceeded++
			s.EmployeesDone += c.Employees
			s.Records += int64(c.Records)
		case domain.ChunkFailed:
			s.ChunksFailed++
			s.EmployeesFailed += c.Employees
			if c.WorkerDied {
				s.EmployeesWorkerDied += c.Employees
			}
		case domain.ChunkSplit:
			s.ChunksSplit++
		case domain.ChunkCancelled:
			s.ChunksCancelled++
			s.EmployeesCancelled += c.Employees
		}
	}
	if s.RowsRemoved {
		s.EmployeesRemoved, s.EmployeesDone, s.Records = s.EmployeesDone, 0, 0
	}
	return s
}

func (l *Ledger) RunTraceparent(context.Context, int64) (string, error) { return "", nil }

// ActiveRun returns the closing's unfinished run, if any.
func (l *Ledger) ActiveRun(_ context.Context, closingID int64) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		if r.ClosingID == closingID && !r.Finished() {
			return r.ID, true, nil
		}
	}
	return 0, false, nil
}

// RunByRequest returns the closing's run started with requestID, if any.
func (l *Ledger) RunByRequest(_ context.Context, closingID int64, requestID string) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		if r.ClosingID == closingID && r.RequestID == requestID && requestID != "" {
			return r.ID, true, nil
		}
	}
	return 0, false, nil
}

// LatestRunID returns the closing's newest run.
func (l *Ledger) LatestRunID(_ context.Context, closingID int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var latest int64
	for _, r := range l.runs {
		if r.ClosingID == closingID {
			latest = max(latest, r.ID)
		}
	}
	if latest == 0 {
		return 0, fmt.Errorf("finding the latest consolidation of closing %d: %w", closingID, store.ErrNotFound)
	}
	return latest, nil
}

// sortedRuns are the runs matching keep, by id.
func (l *Ledger) sortedRuns(keep func(*run) bool) []int64 {
	var ids []int64
	for id, r := range l.runs {
		if keep(r) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// UnfinishedRuns lists the runs not ended, by id, with their employees.
func (l *Ledger) UnfinishedRuns(context.Context) ([]store.UnfinishedRun, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []store.UnfinishedRun
	for _, id := range l.sortedRuns(func(r *run) bool { return !r.Finished() }) {
		out = append(out, store.UnfinishedRun{ID: id, Employees: l.runs[id].TotalEmployees})
	}
	return out, nil
}

// RequestCancel stores a cancel on an unfinished run (the first caller kept)
// and revokes the tokens of its unfinished chunks (store.RequestCancel).
func (l *Ledger) RequestCancel(_ context.Context, runID int64, by string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	if !ok {
		return false, nil
	}
	changed := false
	if !r.Finished() {
		if !r.CancelRequested {
			r.CancelRequested, r.CancelledBy = true, by
		}
		changed = true
	}
	for _, c := range r.chunks {
		if c.Status == domain.ChunkPending || c.Status == domain.ChunkRunning {
			c.token = 0
		}
	}
	return changed, nil
}

// CheckControlTotals adds up the run's succeeded chunks and the rows it wrote
// (split or not: the same sums).
func (l *Ledger) CheckControlTotals(_ context.Context, runID int64, _ bool) (store.ControlTotals, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t store.ControlTotals
	r, ok := l.runs[runID]
	if !ok {
		return t, nil
	}
	for _, c := range r.chunks {
		if c.Status == domain.ChunkSucceeded {
			t.Ledger.Employees += c.Employees
			t.Ledger.Records += c.Records
			t.Ledger.TotalHaberes += c.TotalHaberes
			t.Ledger.TotalDescuentos += c.TotalDescuentos
			t.Ledger.LiquidoPagar += c.LiquidoPagar
		}
	}
	for _, row := range l.closings[r.ClosingID].rows {
		if row.RunID == runID {
			add(&t.Written, row)
		}
	}
	return t, nil
}

func add(s *store.WriteSummary, row Row) {
	s.Employees++
	s.Records += row.Records
	s.TotalHaberes += row.Haberes
	s.TotalDescuentos += row.Descuentos
	s.LiquidoPagar += row.Haberes - row.Descuentos
}

// GetMetrics reads the closing's metrics row: here, the run that wrote it and
// its counts.
func (l *Ledger) GetMetrics(_ context.Context, closingID int64) (store.Metrics, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := l.sortedRuns(func(r *run) bool { return r.ClosingID == closingID && r.Finished() })
	if len(ids) == 0 {
		return store.Metrics{}, fmt.Errorf("reading the metrics of closing %d: %w", closingID, store.ErrNotFound)
	}
	r := l.runs[ids[len(ids)-1]].summed()
	return store.Metrics{RunID: r.ID, TotalEmpleados: r.TotalEmployees, ChunksProcesados: r.TotalChunks,
		ChunksExitosos: r.ChunksSucceeded, RegistrosCreados: r.Records,
		TiempoTotal: r.FinishedAt.Sub(r.StartedAt).Seconds(), ChunkSizeUtilizado: r.ChunkSize}, nil
}

// ClosingTotals adds up the closing's rows, whichever run wrote them.
func (l *Ledger) ClosingTotals(_ context.Context, closingID int64) (store.WriteSummary, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s store.WriteSummary
	for _, row := range l.closings[closingID].rows {
		add(&s, row)
	}
	s.Records = 0
	return s, nil
}

// sortedChunks returns copies of the run's chunks with one of statuses (all
// when none), by index.
func (r *run) sortedChunks(limit int, statuses ...domain.ChunkStatus) []store.Chunk {
	var out []store.Chunk
	for _, c := range r.chunks {
		if len(statuses) == 0 || slices.Contains(statuses, c.Status) {
			out = append(out, c.Chunk)
		}
	}
	slices.SortFunc(out, func(a, b store.Chunk) int { return cmp.Compare(a.Index, b.Index) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Chunks lists the run's chunks with one of statuses (all when none), by index,
// at most limit (0: no limit).
func (l *Ledger) Chunks(_ context.Context, runID int64, limit int, statuses ...domain.ChunkStatus) ([]store.Chunk, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.runs[runID]
	if !ok {
		return nil, nil
	}
	return r.sortedChunks(limit, statuses...), nil
}

func (r *run) chunk(index int) *chunk {
	if index < 0 || index >= len(r.chunks) {
		return nil
	}
	return r.chunks[index]
}

// GetChunk reads one chunk.
func (l *Ledger) GetChunk(_ context.Context, runID int64, index int) (store.Chunk, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var c *chunk
	if r, ok := l.runs[runID]; ok {
		c = r.chunk(index)
	}
	if c == nil {
		return store.Chunk{}, fmt.Errorf("reading chunk %d of consolidation %d: %w", index, runID, store.ErrNotFound)
	}
	return c.Chunk, nil
}

// owned says whether the caller's epoch is the run's: nil when no such run.
func (l *Ledger) owned(lease store.RunLease) (*run, bool) {
	r, ok := l.runs[lease.RunID]
	if !ok {
		return nil, false
	}
	return r, r.leaseEpoch == lease.Epoch
}
