package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	ChunkSize int // 0: the policy's
	Force     bool
}

const refusalExamples = 20

// Start checks a closing, plans the run and stores it with its plan, then drives it
// in the background. Every refusal happens before anything is written.
func (e *Engine) Start(ctx context.Context, req StartRequest) (store.Run, error) {
	if err := e.checkDependencies(ctx); err != nil {
		return store.Run{}, err
	}
	closing, err := e.closings.GetClosing(ctx, req.ClosingID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Run{}, errorf(KindNotFound, "closing %d does not exist", req.ClosingID)
	}
	if err != nil {
		return store.Run{}, err
	}
	if id, ok, err := e.ledger.ActiveRun(ctx, closing.ID); err != nil {
		return store.Run{}, err
	} else if ok {
		return store.Run{}, errorf(KindAlreadyExists, "closing %d already has consolidation %d in progress", closing.ID, id)
	}
	if err := checkEstado(closing, req); err != nil {
		return store.Run{}, err
	}
	problems, err := e.closings.CheckRUTs(ctx, closing.ID, refusalExamples)
	if err != nil {
		return store.Run{}, err
	}
	if !problems.OK() {
		return store.Run{}, rutRefusal(closing.ID, problems)
	}

	policy := req.Policy
	if policy == "" {
		policy = e.cfg.DefaultPolicy
	}
	nr := store.NewRun{ClosingID: closing.ID, Mode: req.Mode, Policy: policy, PreviousEstado: closing.Estado,
		Deadline: time.Now().Add(e.cfg.RunTimeout)}
	if req.Mode == domain.ModeRetryFailed {
		err = e.planRetry(ctx, closing, &nr)
	} else {
		err = e.planFull(ctx, closing, policy, req.ChunkSize, &nr)
	}
	if err != nil {
		return store.Run{}, err
	}
	if nr.UnmatchedNovedades, err = e.closings.CountUnmatchedNovedades(ctx, closing.ID); err != nil {
		return store.Run{}, err
	}

	runID, err := e.ledger.StartRun(ctx, nr)
	var active *store.ActiveRunError
	switch {
	case errors.As(err, &active):
		return store.Run{}, errorf(KindAlreadyExists, "closing %d already has consolidation %d in progress", closing.ID, active.RunID)
	case errors.Is(err, store.ErrClosingStateChanged):
		return store.Run{}, errorf(KindFailedPrecondition, "closing %d changed estado while the run was being planned; try again", closing.ID)
	case err != nil:
		return store.Run{}, err
	}
	run, err := e.ledger.GetRun(ctx, runID)
	if err != nil {
		return store.Run{}, err
	}
	e.runsStarted.Add(ctx, 1)
	e.logger.InfoContext(ctx, "consolidation started", "consolidation_id", runID, "closing_id", closing.ID,
		"mode", req.Mode, "policy", nr.Policy, "chunk_size", nr.ChunkSize, "chunks", len(nr.Chunks),
		"employees", nr.TotalEmployees, "unmatched_novedades", nr.UnmatchedNovedades)
	snap := progress.Compute(progress.Snapshot{TotalChunks: run.TotalChunks, TotalEmployees: run.TotalEmployees}, run.StartedAt, time.Now())
	if err := e.progress.Reset(ctx, runID, run.ClosingID, nil, e.progressFields(run, snap), e.cfg.KeyTTL); err != nil {
		e.logger.WarnContext(ctx, "initializing progress in redis", "consolidation_id", runID, "error", err.Error())
	}
	e.launch(runID)
	return run, nil
}

func (e *Engine) checkDependencies(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := e.ledger.Ping(cctx); err != nil {
		return errorf(KindUnavailable, "postgresql is unreachable")
	}
	if err := e.progress.Ping(cctx); err != nil {
		return errorf(KindUnavailable, "redis is unreachable")
	}
	if _, err := e.workers.Healthy(cctx); err != nil {
		return errorf(KindUnavailable, "no worker is reachable")
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
	return errorf(KindFailedPrecondition, "closing %d is in estado %q, from which a %s run may not start%s",
		c.ID, c.Estado, req.Mode, hint)
}

func rutRefusal(closingID int64, p store.RUTProblems) *Error {
	var b strings.Builder
	fmt.Fprintf(&b, "closing %d cannot be consolidated:", closingID)
	if p.BadCount > 0 {
		fmt.Fprintf(&b, " %d RUT(s) do not normalize:", p.BadCount)
		for _, r := range p.Bad {
			fmt.Fprintf(&b, " %s row %d %q;", r.Table, r.RowID, r.Raw)
		}
		if p.BadCount > len(p.Bad) {
			fmt.Fprintf(&b, " and %d more;", p.BadCount-len(p.Bad))
		}
	}
	if p.RepeatedCount > 0 {
		fmt.Fprintf(&b, " %d RUT(s) appear in more than one row of the same source:", p.RepeatedCount)
		for _, r := range p.Repeated {
			fmt.Fprintf(&b, " %s RUT %s rows %v;", r.Table, r.RUT, r.RowIDs)
		}
		if p.RepeatedCount > len(p.Repeated) {
			fmt.Fprintf(&b, " and %d more;", p.RepeatedCount-len(p.Repeated))
		}
	}
	return &Error{Kind: KindFailedPrecondition, Msg: strings.TrimSuffix(b.String(), ";")}
}

// planFull plans every libro employee of the closing, streaming them so the
// coordinator holds only the chunk boundaries.
func (e *Engine) planFull(ctx context.Context, c store.Closing, policy domain.Policy, size int, nr *store.NewRun) error {
	n, err := e.closings.CountEmployees(ctx, c.ID)
	if err != nil {
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
		return errorf(KindInvalidArgument, "chunk_policy: %v", err)
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
		return errorf(KindFailedPrecondition, "closing %d has no previous consolidation to retry", c.ID)
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
		return errorf(KindFailedPrecondition, "consolidation %d of closing %d has no failed employees to retry", last, c.ID)
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
