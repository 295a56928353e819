package server

import (
	"context"
	"fmt"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/rules"
	"github.com/nominacl/consolidation/pkg/store"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// The read-only RPCs for the run history and the analyst: ListConsolidations,
// ExplainEmployee, ExportConsolidation.

func (s *ConsolidationServer) ListConsolidations(ctx context.Context, req *consolidationv1.ListConsolidationsRequest) (*consolidationv1.ListConsolidationsResponse, error) {
	if req.GetClosingId() < 0 {
		return nil, s.toStatus(ctx, engine.InvalidArgument("closing_id", "closing_id must not be negative"))
	}
	f := store.RunFilter{ClosingID: req.GetClosingId(), Estado: domain.Estado(req.GetEstado())}
	if req.StartedAfter != nil {
		f.StartedAfter = req.GetStartedAfter().AsTime()
	}
	if req.StartedBefore != nil {
		f.StartedBefore = req.GetStartedBefore().AsTime()
	}
	runs, next, err := s.engine.List(ctx, engine.ListRequest{Filter: f, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &consolidationv1.ListConsolidationsResponse{NextPageToken: next}
	for _, r := range runs {
		c := toProto(engine.Report{Run: r})
		c.Progress = nil // a summary: GetConsolidation has the live progress
		resp.Consolidations = append(resp.Consolidations, c)
	}
	return resp, nil
}

func (s *ConsolidationServer) ExplainEmployee(ctx context.Context, req *consolidationv1.ExplainEmployeeRequest) (*consolidationv1.ExplainEmployeeResponse, error) {
	ex, err := s.engine.Explain(ctx, req.GetClosingId(), req.GetRut())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &consolidationv1.ExplainEmployeeResponse{ClosingId: ex.ClosingID, EmployeeId: ex.EmployeeID,
		NovedadesId: ex.NovedadesID, Rut: ex.Computed.RUT, Computed: employeeProto(0, 0, ex.Computed),
		Month: fmt.Sprintf("%04d-%02d", ex.Month.Year, int(ex.Month.Month))}
	if st := ex.Stored; st != nil {
		resp.Stored = employeeProto(st.ID, st.RunID, st.Consolidated)
	}
	for _, d := range ex.Decisions.Concepts {
		resp.Concepts = append(resp.Concepts, &consolidationv1.ConceptDecision{Code: d.Code,
			LibroLines: linesProto(d.LibroLines), LibroCents: int64(d.LibroValue), InLibro: d.InLibro,
			NovedadesLines: linesProto(d.NovedadesLines), NovedadesCents: int64(d.NovedadesValue), InNovedades: d.InNovedades,
			Chosen: d.Chosen, ChosenCents: int64(d.Value), Source: d.Source, Rule: d.Rule, Reason: d.Reason,
			Discrepancy: d.Discrepancy})
	}
	for _, f := range ex.Decisions.Flags {
		fd := &consolidationv1.FlagDecision{Flag: f.Flag, Value: f.Value, Rule: f.Rule, Reason: f.Reason}
		for _, m := range f.AltasBajas {
			fd.Movements = append(fd.Movements, &consolidationv1.Movement{Table: "nomina_movimiento_alta_baja", Id: m.ID,
				Type: m.Tipo, Date: engine.Date(m.Fecha)})
		}
		for _, a := range f.Ausentismos {
			fd.Movements = append(fd.Movements, &consolidationv1.Movement{Table: "nomina_movimiento_ausentismo", Id: a.ID,
				Type: ex.AbsenceTypes[a.ID], Date: engine.Date(a.Inicio), EndDate: engine.Date(a.Fin)})
		}
		resp.Flags = append(resp.Flags, fd)
	}
	return resp, nil
}

func (s *ConsolidationServer) ExportConsolidation(req *consolidationv1.ExportConsolidationRequest, stream consolidationv1.ConsolidationService_ExportConsolidationServer) error {
	err := s.engine.Export(stream.Context(), req.GetClosingId(), func(recs []store.StoredRecord) error {
		msg := &consolidationv1.ExportConsolidationResponse{Employees: make([]*consolidationv1.ConsolidatedEmployee, len(recs))}
		for i, r := range recs {
			msg.Employees[i] = employeeProto(r.ID, r.RunID, r.Consolidated)
		}
		return stream.Send(msg)
	})
	if err != nil {
		return s.toStatus(stream.Context(), err)
	}
	return nil
}

// consolidateResponse is the answer to Consolidate: the run started, or with
// validate_only the run that would be, with its plan.
func consolidateResponse(run engine.Started) *consolidationv1.ConsolidateResponse {
	c := toProto(engine.Report{Run: run.Run})
	resp := &consolidationv1.ConsolidateResponse{ConsolidationId: run.ID, ClosingId: run.ClosingID, Estado: string(run.Estado),
		TotalChunks: int32(run.TotalChunks), TotalEmployees: int32(run.TotalEmployees), ValidateOnly: run.ValidateOnly,
		Mode: c.GetMode(), ChunkPolicy: c.GetChunkPolicy(), ChunkSize: int32(run.ChunkSize),
		UnmatchedNovedades: int32(run.UnmatchedNovedades)}
	for _, ch := range run.Plan {
		resp.PlannedChunks = append(resp.PlannedChunks, &consolidationv1.PlannedChunk{ChunkIndex: int32(ch.Index),
			FirstEmployeeId: ch.FirstID, LastEmployeeId: ch.LastID, Employees: int32(ch.Employees), Weight: ch.Weight})
	}
	return resp
}

func employeeProto(id, runID int64, c rules.Consolidated) *consolidationv1.ConsolidatedEmployee {
	e := &consolidationv1.ConsolidatedEmployee{Id: id, EmployeeId: c.EmpleadoOrigenID, Rut: c.RUT,
		NombreCompleto: c.NombreCompleto, Cargo: c.Cargo, CentroCosto: c.CentroCosto, EsIngreso: c.EsIngreso,
		EsFiniquito: c.EsFiniquito, TieneAusentismo: c.TieneAusentismo, TotalHaberesCents: int64(c.TotalHaberes),
		TotalDescuentosCents: int64(c.TotalDescuentos), LiquidoPagarCents: int64(c.LiquidoPagar),
		FuentesUtilizadas: c.FuentesUtilizadas, ReglasAplicadas: c.ReglasAplicadas,
		DiscrepanciasResueltas: int32(c.DiscrepanciasResueltas), ConsolidationId: runID}
	for _, l := range c.Lines {
		e.Concepts = append(e.Concepts, &consolidationv1.ConsolidatedConcept{Code: l.Code, Name: l.Name,
			ValueCents: int64(l.Value), Type: l.Type, Source: l.Source})
	}
	return e
}

func linesProto(ls []rules.Line) []*consolidationv1.SourceLine {
	out := make([]*consolidationv1.SourceLine, len(ls))
	for i, l := range ls {
		out[i] = &consolidationv1.SourceLine{LineId: l.ID, Code: l.Code, Name: l.Name, ValueCents: int64(l.Value), Type: l.Type}
	}
	return out
}
