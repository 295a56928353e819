package server

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

var statuses = map[domain.Estado]consolidationv1.RunStatus{
	domain.EstadoConsolidando:  consolidationv1.RunStatus_RUN_STATUS_RUNNING,
	domain.EstadoConsolidados:  consolidationv1.RunStatus_RUN_STATUS_SUCCEEDED,
	domain.EstadoParcial:       consolidationv1.RunStatus_RUN_STATUS_PARTIAL,
	domain.EstadoError:         consolidationv1.RunStatus_RUN_STATUS_FAILED,
	domain.EstadoCancelada:     consolidationv1.RunStatus_RUN_STATUS_CANCELLED,
	domain.EstadoTimeout:       consolidationv1.RunStatus_RUN_STATUS_TIMED_OUT,
	domain.EstadoErrorRecursos: consolidationv1.RunStatus_RUN_STATUS_RESOURCES_EXHAUSTED,
}

func progressProto(p progress.Snapshot) *consolidationv1.Progress {
	return &consolidationv1.Progress{
		ChunksDone: int32(p.ChunksDone), TotalChunks: int32(p.TotalChunks),
		EmployeesDone: int32(p.EmployeesDone), TotalEmployees: int32(p.TotalEmployees),
		Percent: p.Percent, Elapsed: durationpb.New(p.Elapsed), Eta: durationpb.New(p.ETA),
	}
}

func toProto(r engine.Report) *consolidationv1.Consolidation {
	run := r.Run
	c := &consolidationv1.Consolidation{
		ConsolidationId:       run.ID,
		ClosingId:             run.ClosingID,
		Status:                statuses[run.Estado],
		Estado:                string(run.Estado),
		Mode:                  consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_FULL,
		ChunkPolicy:           domainpb.PolicyToProto(run.Policy),
		ChunkSize:             int32(run.ChunkSize),
		TotalChunks:           int32(run.TotalChunks),
		TotalEmployees:        int32(run.TotalEmployees),
		ChunksSucceeded:       int32(run.ChunksSucceeded),
		ChunksFailed:          int32(run.ChunksFailed),
		EmployeesConsolidated: int32(run.EmployeesDone),
		RecordsCreated:        run.Records,
		UnmatchedNovedades:    int32(run.UnmatchedNovedades),
		FailedChunksTotal:     int32(run.ChunksFailed),
		FailedEmployeesTotal:  int32(run.EmployeesFailed),
		Progress:              progressProto(r.Progress),
		StartedAt:             timestamppb.New(run.StartedAt),
		Error:                 run.Error,
		RequestId:             run.RequestID,
		RequestedBy:           run.RequestedBy,
		CancelledBy:           run.CancelledBy,
		ClosingEstadoFound:    string(run.ClosingEstadoFound),
		ChunksSplit:           int32(run.ChunksSplit),
		ChunksCancelled:       int32(run.ChunksCancelled),
		EmployeesCancelled:    int32(run.EmployeesCancelled),
		RowsRemoved:           run.RowsRemoved,
		EmployeesRemoved:      int32(run.EmployeesRemoved),
		ControlTotals: &consolidationv1.ControlTotals{
			TotalHaberesCents: int64(run.TotalHaberes), TotalDescuentosCents: int64(run.TotalDescuentos),
			LiquidoPagarCents: int64(run.LiquidoPagar), Verified: run.TotalsVerified,
		},
	}
	if run.Mode == domain.ModeRetryFailed {
		c.Mode = consolidationv1.ConsolidationMode_CONSOLIDATION_MODE_RETRY_FAILED
	}
	if run.Finished() {
		c.FinishedAt = timestamppb.New(run.FinishedAt)
	}
	for _, f := range r.FailedChunks {
		c.FailedChunks = append(c.FailedChunks, &consolidationv1.FailedChunk{ChunkIndex: int32(f.Index),
			FirstEmployeeId: f.FirstID, LastEmployeeId: f.LastID, Employees: int32(f.Employees),
			Attempts: int32(f.Attempts), Error: f.Error})
	}
	for _, f := range r.FailedEmployees {
		c.FailedEmployees = append(c.FailedEmployees, &consolidationv1.FailedEmployee{EmployeeId: f.EmployeeID,
			ChunkIndex: int32(f.ChunkIndex), Error: f.Error, WorkerDied: f.WorkerDied, Rut: f.RUT})
	}
	if t := r.ClosingTotals; t != nil {
		c.ClosingTotals = &consolidationv1.ClosingTotals{Employees: int32(t.Employees),
			TotalHaberesCents: int64(t.TotalHaberes), TotalDescuentosCents: int64(t.TotalDescuentos),
			LiquidoPagarCents: int64(t.LiquidoPagar)}
	}
	if m := r.Metrics; m != nil {
		c.Metrics = &consolidationv1.RunMetrics{
			TotalEmpleados: int32(m.TotalEmpleados), ChunksProcesados: int32(m.ChunksProcesados),
			ChunksExitosos: int32(m.ChunksExitosos), RegistrosCreados: m.RegistrosCreados,
			TiempoTotalSeconds: m.TiempoTotal, TiempoPromedioChunkSeconds: m.TiempoPromedioChunk,
			ThroughputEmpleadosSec: m.ThroughputEmpleadosSec, ThroughputRegistrosSec: m.ThroughputRegistrosSec,
			MemoriaPicoMb: m.MemoriaPicoMB, CpuPromedioPercent: m.CPUPromedioPercent,
			ChunkSizeUtilizado: int32(m.ChunkSizeUtilizado), WorkersUtilizados: int32(m.WorkersUtilizados),
			VersionAlgoritmo: m.VersionAlgoritmo,
		}
	}
	return c
}
