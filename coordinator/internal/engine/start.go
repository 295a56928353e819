package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/plan"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// StartRequest is a validated Consolidate call.
type StartRequest struct {
	ClosingID int64
	Mode      domain.Mode
	Policy    domain.Policy
	ChunkSize int // 0: the policy's; else 1..plan.MaxChunkSize, refused otherwise
	Force     bool
	// RequestID is the caller's idempotency key ("": none): a start with the id
	// of a run of the same closing returns that run (see Start).
	RequestID string
	// RequestedBy is the caller's identity (grpcx.CallerIdentity), stored on the
	// run for audit; "" without TLS.
	RequestedBy string
	// ValidateOnly makes Start a dry run (AIP-163): every check and the plan, and
	// nothing written or started (see Started).
	ValidateOnly bool
}

// Started is what Start answers: the run started (or, with a request id, found),
// or with ValidateOnly the run a real start would store, not stored: ID 0, Estado
// the closing's present one, and its Plan.
type Started struct {
	store.Run
	ValidateOnly bool
	Plan         []store.ChunkRange // set only with ValidateOnly
}

// MaxRequestIDLen bounds a request id: at most this many printable ASCII
// characters.
const MaxRequestIDLen = 128

const refusalExamples = 20

// Start checks a closing, plans the run and stores it with its plan, then drives it
// in the background. Every refusal happens before anything is written, so a
// ValidateOnly start, which returns where a real one would write, refuses exactly
// as a real one.
//
// With a RequestID, a start is safe to retry (AIP-155): when the closing has a run
// started with that id, Start returns it, whatever its state and whatever the
// other fields of the request (mode, force, policy, chunk size), without any
// check and without starting anything. Of two first calls racing with one id, the
// one whose run is stored wins (a unique index on (closing, request id)); the
// other returns the winner's run.
func (e *Engine) Start(ctx context.Context, req StartRequest) (Started, error) {
	if err := checkChunkSize(req.ChunkSize); err != nil {
		return Started{}, err
	}
	if err := validRequestID(req.RequestID); err != nil {
		return Started{}, err
	}
	if req.RequestID == "" {
		return e.start(ctx, req)
	}
	if run, ok, err := e.runOfRequest(ctx, req); err != nil || ok {
		if err != nil {
			if derr := e.checkDependencies(ctx); derr != nil {
				return Started{}, derr
			}
		}
		return Started{Run: run}, err
	}
	run, err := e.start(ctx, req)
	if err != nil {
		// A call with the same id may have stored its run meanwhile: this call's
		// refusal (run in progress, estado changed) is that run's doing.
		if won, ok, lerr := e.runOfRequest(ctx, req); lerr == nil && ok {
			return Started{Run: won}, nil
		}
	}
	return run, err
}

// runOfRequest returns the run of the closing started with req's request id, if
// any, as the start that created it answered: estado consolidando_datos (ask
// GetConsolidation for where it is now).
func (e *Engine) runOfRequest(ctx context.Context, req StartRequest) (store.Run, bool, error) {
	id, ok, err := e.ledger.RunByRequest(ctx, req.ClosingID, req.RequestID)
	if err != nil || !ok {
		return store.Run{}, false, err
	}
	run, err := e.ledger.GetRun(ctx, id)
	if err != nil {
		return store.Run{}, false, err
	}
	run.Estado = domain.EstadoConsolidando
	e.logger.InfoContext(ctx, "consolidation start repeated", "consolidation_id", run.ID, "closing_id", run.ClosingID)
	return run, true, nil
}

// validRequestID checks a request id: at most MaxRequestIDLen printable ASCII
// characters.
func validRequestID(id string) error {
	if len(id) > MaxRequestIDLen {
		return InvalidArgument("request_id", "request_id is %d characters long; at most %d are allowed", len(id), MaxRequestIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return InvalidArgument("request_id", "request_id must be printable ASCII; byte %d is 0x%02x", i, id[i])
		}
	}
	return nil
}

// start is Start without the request id's lookups.
func (e *Engine) start(ctx context.Context, req StartRequest) (Started, error) {
	if err := e.checkDependencies(ctx); err != nil {
		return Started{}, err
	}
	closing, err := e.closings.GetClosing(ctx, req.ClosingID)
	if errors.Is(err, store.ErrNotFound) {
		return Started{}, closingNotFound(req.ClosingID, "closing %d does not exist", req.ClosingID)
	}
	if err != nil {
		return Started{}, err
	}
	if id, ok, err := e.ledger.ActiveRun(ctx, closing.ID); err != nil {
		return Started{}, err
	} else if ok {
		return Started{}, runInProgress(closing.ID, id)
	}
	if err := checkEstado(closing, req); err != nil {
		return Started{}, err
	}
	employees, err := e.closings.CountEmployees(ctx, closing.ID)
	if err != nil {
		return Started{}, err
	}
	// The checks and the plan pass over the closing's employees: in the start
	// lane, the smallest closing first (docs/architecture.md, "Many runs at once").
	if err := e.starts.Acquire(ctx, closing.ID, employees); err != nil {
		return Started{}, err
	}
	started := false
	defer func() {
		if !started {
			e.starts.Release()
		}
	}()
	problems, err := e.closings.CheckRUTs(ctx, closing.ID, refusalExamples)
	if err != nil {
		return Started{}, err
	}
	if !problems.OK() {
		return Started{}, rutRefusal(closing.ID, problems)
	}

	policy := req.Policy
	if policy == "" {
		policy = e.cfg.DefaultPolicy
	}
	nr := store.NewRun{ClosingID: closing.ID, Mode: req.Mode, Policy: policy, PreviousEstado: closing.Estado,
		Deadline: time.Now().Add(e.cfg.RunTimeout), RequestID: req.RequestID, RequestedBy: req.RequestedBy,
		Traceparent: traceparentOf(ctx)}
	if req.Mode == domain.ModeRetryFailed {
		err = e.planRetry(ctx, closing, &nr)
	} else {
		err = e.planFull(ctx, closing, policy, employees, req.ChunkSize, &nr)
	}
	if err != nil {
		return Started{}, err
	}
	if nr.UnmatchedNovedades, err = e.closings.CountUnmatchedNovedades(ctx, closing.ID); err != nil {
		return Started{}, err
	}

	if req.ValidateOnly {
		e.logger.InfoContext(ctx, "consolidation validated, not started", "closing_id", closing.ID, "mode", req.Mode,
			"policy", nr.Policy, "chunk_size", nr.ChunkSize, "chunks", len(nr.Chunks), "employees", nr.TotalEmployees,
			"unmatched_novedades", nr.UnmatchedNovedades)
		return Started{ValidateOnly: true, Plan: nr.Chunks, Run: store.Run{ClosingID: closing.ID, Mode: nr.Mode,
			Policy: nr.Policy, ChunkSize: nr.ChunkSize, PreviousEstado: closing.Estado, Estado: closing.Estado,
			TotalChunks: len(nr.Chunks), TotalEmployees: nr.TotalEmployees, UnmatchedNovedades: nr.UnmatchedNovedades,
			RequestID: req.RequestID, RequestedBy: req.RequestedBy}}, nil
	}
	runID, err := e.ledger.StartRun(ctx, nr)
	var active *store.ActiveRunError
	switch {
	case errors.As(err, &active):
		return Started{}, runInProgress(closing.ID, active.RunID)
	case errors.Is(err, store.ErrClosingStateChanged):
		return Started{}, failedPrecondition(ReasonEstadoChanged, ids(closing.ID, 0),
			PreconditionViolation{Type: ViolationEstado, Subject: subject("nomina_cierrenomina", closing.ID)},
			"closing %d changed estado while the run was being planned; try again", closing.ID)
	case err != nil:
		return Started{}, err
	}
	started = true
	e.starts.Release()
	run, err := e.ledger.GetRun(ctx, runID)
	if err != nil {
		return Started{}, err
	}
	e.runsStarted.Add(ctx, 1)
	e.logger.InfoContext(ctx, "consolidation started", "consolidation_id", runID, "closing_id", closing.ID,
		"mode", req.Mode, "policy", nr.Policy, "chunk_size", nr.ChunkSize, "chunks", len(nr.Chunks),
		"employees", nr.TotalEmployees, "unmatched_novedades", nr.UnmatchedNovedades)
	snap := progress.Compute(progress.Snapshot{TotalChunks: run.TotalChunks, TotalEmployees: run.TotalEmployees}, run.StartedAt, time.Now())
	if err := e.progress.Publish(ctx, e.progressRun(run), nil, snap); err != nil {
		e.logger.WarnContext(ctx, "initializing progress in redis", "consolidation_id", runID, "error", err.Error())
	}
	e.launch(runID, run.TotalEmployees)
	return Started{Run: run}, nil
}

// checkDependencies asks PostgreSQL, Redis and the workers at once (one round
// trip's wait, not three in a row) and refuses with the first unreachable of
// them in that order.
func (e *Engine) checkDependencies(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var pgErr, redisErr, workersErr error
	var wg sync.WaitGroup
	wg.Go(func() { pgErr = e.ledger.Ping(cctx) })
	wg.Go(func() { redisErr = e.progress.Ping(cctx) })
	_, workersErr = e.workers.Healthy(cctx)
	wg.Wait()
	switch {
	case pgErr != nil:
		return unavailable("postgresql", "postgresql is unreachable")
	case redisErr != nil:
		return unavailable("redis", "redis is unreachable")
	case workersErr != nil:
		return unavailable("workers", "no worker is reachable")
	}
	return nil
}

func checkEstado(c store.Closing, req StartRequest) error {
	if c.Estado.CanStart(req.Mode, req.Force) {
		return nil
	}
	hint := ""
	if c.Estado == domain.EstadoConsolidados && !req.Force && req.Mode != domain.ModeRetryFailed {
		hint = " (set force to consolidate it again)"
	}
	md := ids(c.ID, 0)
	md["estado"], md["mode"] = string(c.Estado), string(req.Mode)
	return failedPrecondition(ReasonEstadoMayNotStart, md,
		PreconditionViolation{Type: ViolationEstado, Subject: subject("nomina_cierrenomina", c.ID)},
		"closing %d is in estado %q, from which a %s run may not start%s", c.ID, c.Estado, req.Mode, hint)
}

// rutRefusal is the refusal of a closing whose RUTs do not normalize or repeat
// (docs/rules.md, "Refusals"): the message lists the rows found, by table and
// id, and so do the details, one PreconditionFailure violation per row listed,
// with the totals in the ErrorInfo. A RUT is personal data: neither names one,
// the rows' ids say where to look.
func rutRefusal(closingID int64, p store.RUTProblems) *Error {
	var vs []PreconditionViolation
	for _, r := range p.Bad {
		vs = append(vs, PreconditionViolation{Type: ViolationRUTInvalid, Subject: subject(r.Table, r.RowID),
			Description: "its RUT does not normalize"})
	}
	for _, r := range p.Repeated {
		for _, id := range r.RowIDs {
			vs = append(vs, PreconditionViolation{Type: ViolationRUTRepeated, Subject: subject(r.Table, id),
				Description: fmt.Sprintf("rows %v of %s share one RUT", r.RowIDs, r.Table)})
		}
	}
	md := ids(closingID, 0)
	md["invalid_ruts"], md["repeated_ruts"] = strconv.Itoa(p.BadCount), strconv.Itoa(p.RepeatedCount)
	md["violations_listed"] = strconv.Itoa(len(vs))
	var b strings.Builder
	fmt.Fprintf(&b, "closing %d cannot be consolidated:", closingID)
	if p.BadCount > 0 {
		fmt.Fprintf(&b, " %d RUT(s) do not normalize:", p.BadCount)
		for _, r := range p.Bad {
			fmt.Fprintf(&b, " %s row %d;", r.Table, r.RowID)
		}
		if p.BadCount > len(p.Bad) {
			fmt.Fprintf(&b, " and %d more;", p.BadCount-len(p.Bad))
		}
	}
	if p.RepeatedCount > 0 {
		fmt.Fprintf(&b, " %d RUT(s) appear in more than one row of the same source:", p.RepeatedCount)
		for _, r := range p.Repeated {
			fmt.Fprintf(&b, " %s rows %v;", r.Table, r.RowIDs)
		}
		if p.RepeatedCount > len(p.Repeated) {
			fmt.Fprintf(&b, " and %d more;", p.RepeatedCount-len(p.Repeated))
		}
	}
	e := (&Error{Kind: KindFailedPrecondition, Msg: strings.TrimSuffix(b.String(), ";")}).with(ReasonRUTsRefused, md)
	e.Preconditions = vs
	return e
}

// planFull plans every libro employee of the closing (n, counted), streaming
// them so the coordinator holds only the chunk boundaries.
func (e *Engine) planFull(ctx context.Context, c store.Closing, policy domain.Policy, n, size int, nr *store.NewRun) error {
	if err := checkPlanBounds(c.ID, n, size); err != nil {
		return err
	}
	weighted := policy == domain.PolicyCostWeighted
	var costs []store.EmployeeCost
	total := float64(n)
	if weighted {
		// The cost-weighted policy needs the total weight before it can cut; costs
		// are small (four numbers an employee).
		if err := e.closings.EachEmployee(ctx, c.ID, true, func(ec store.EmployeeCost) { costs = append(costs, ec) }); err != nil {
			return err
		}
		total = 0
		for _, ec := range costs {
			total += toPlan(ec).Weight()
		}
		n = len(costs)
	}
	b, err := plan.NewBuilder(policy, n, total, size)
	if err != nil {
		return InvalidArgument("chunk_policy", "chunk_policy: %v", err)
	}
	var addErr error
	add := func(ec store.EmployeeCost) {
		if addErr == nil {
			addErr = b.Add(toPlan(ec))
		}
	}
	if weighted {
		for _, ec := range costs {
			add(ec)
		}
	} else if err := e.closings.EachEmployee(ctx, c.ID, false, add); err != nil {
		return err
	}
	if addErr != nil {
		return fmt.Errorf("planning closing %d: %w", c.ID, addErr)
	}
	p, err := b.Plan()
	if err != nil {
		return fmt.Errorf("planning closing %d (employees changed while planning?): %w", c.ID, err)
	}
	nr.ChunkSize = p.ChunkSize
	nr.TotalEmployees = n
	for _, ch := range p.Chunks {
		nr.Chunks = append(nr.Chunks, store.ChunkRange{Index: ch.Index, FirstID: ch.FirstID, LastID: ch.LastID,
			Employees: ch.Employees, Weight: ch.Weight})
	}
	return nil
}

func toPlan(ec store.EmployeeCost) plan.Employee {
	return plan.Employee{ID: ec.ID, Concepts: ec.Concepts, Discrepancies: ec.Discrepancies, Movements: ec.Movements}
}

// planRetry plans exactly the employees that failed in the closing's last run:
// one chunk per failed chunk of it (split chunks failed only in their halves, so
// a poison employee is retried alone), each with the failed chunk's id range and
// employee count.
func (e *Engine) planRetry(ctx context.Context, c store.Closing, nr *store.NewRun) error {
	last, err := e.ledger.LatestRunID(ctx, c.ID)
	if err != nil {
		return failedPrecondition(ReasonNothingToRetry, ids(c.ID, 0),
			PreconditionViolation{Type: ViolationNoRun, Subject: subject("nomina_cierrenomina", c.ID)},
			"closing %d has no previous consolidation to retry", c.ID)
	}
	prev, err := e.ledger.GetRun(ctx, last)
	if err != nil {
		return err
	}
	failed, err := e.ledger.Chunks(ctx, last, 0, domain.ChunkFailed)
	if err != nil {
		return err
	}
	if len(failed) == 0 {
		return failedPrecondition(ReasonNothingToRetry, ids(c.ID, last),
			PreconditionViolation{Type: ViolationNoFailed, Subject: subject("consolidation_run", last)},
			"consolidation %d of closing %d has no failed employees to retry", last, c.ID)
	}
	nr.RetryOf = last
	nr.ChunkSize = prev.ChunkSize
	nr.Policy = prev.Policy
	for i, ch := range failed {
		nr.Chunks = append(nr.Chunks, store.ChunkRange{Index: i, FirstID: ch.FirstID, LastID: ch.LastID, Employees: ch.Employees})
		nr.TotalEmployees += ch.Employees
	}
	return nil
}
