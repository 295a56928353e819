package webui

import (
	"net/http"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/dispatch"
	"github.com/nominacl/consolidation/pkg/store"
)

// activityWindow is how far back the workers page and the throughput page look.
const activityWindow = 6 * time.Hour

type workerRow struct {
	dispatch.WorkerState
	Health, Tone string
	Done, Failed int
	LastSeen     string
}

type workersView struct {
	Rows        []workerRow
	Busy, Slots int
	Others      []store.WorkerActivity // in the ledger, unknown to this coordinator now (gone, or another replica's)
	Window      string
}

func (d *Dashboard) workersPage(w http.ResponseWriter, r *http.Request) {
	if !d.allowRead(w, r, methodList) {
		return
	}
	activity, err := d.engine.WorkersActivity(r.Context(), time.Now().Add(-activityWindow))
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	byWorker := map[string]store.WorkerActivity{}
	for _, a := range activity {
		byWorker[a.Worker] = a
	}
	v := workersView{Window: duration(activityWindow)}
	for _, ws := range d.workers.Workers() {
		row := workerRow{WorkerState: ws, LastSeen: "—"}
		switch {
		case ws.NotServing:
			row.Health, row.Tone = "drenando", "warn"
		case !ws.CoolingUntil.IsZero():
			row.Health, row.Tone = "en pausa tras fallos", "warn"
		case ws.Serving:
			row.Health, row.Tone = "sano", "ok"
		case !ws.HealthHeard && ws.Connection == "READY":
			row.Health, row.Tone = "conectado, esperando su estado de salud", "warn"
		default:
			row.Health, row.Tone = "sin conexión ("+ws.Connection+")", "bad"
		}
		if a, ok := byWorker[ws.Addr]; ok {
			row.Done, row.Failed, row.LastSeen = a.ChunksCommitted, a.AttemptsFailed, timestamp(a.LastSeen)
			delete(byWorker, ws.Addr)
		}
		v.Busy += ws.Busy
		v.Slots += ws.Slots
		v.Rows = append(v.Rows, row)
	}
	for _, a := range activity {
		if _, left := byWorker[a.Worker]; left {
			v.Others = append(v.Others, a)
		}
	}
	d.render(w, r, "workers", "layout", http.StatusOK, pageData{Title: "Workers", Nav: "workers", View: v})
}

type throughputView struct {
	Chart    any
	Window   string
	Bucket   string
	Total    string
	PeakRate string
}

// throughputBucket is the width of one bar of the last hours' chart.
const throughputBucket = 5 * time.Minute

func (d *Dashboard) throughputPage(w http.ResponseWriter, r *http.Request) {
	if !d.allowRead(w, r, methodList) {
		return
	}
	now := time.Now()
	since := now.Add(-activityWindow).Truncate(throughputBucket)
	points, err := d.engine.Throughput(r.Context(), since, throughputBucket)
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	s := windowSeries(points, since, now.Truncate(throughputBucket).Add(throughputBucket), throughputBucket)
	var total int64
	for _, p := range points {
		total += p.Employees
	}
	peak := 0.0
	for _, x := range s.Rates {
		peak = max(peak, x)
	}
	v := throughputView{Chart: s.svg("Empleados por segundo en las últimas horas"), Window: duration(activityWindow),
		Bucket: duration(throughputBucket), Total: count(total), PeakRate: decimal(peak, 1)}
	d.render(w, r, "throughput", "layout", http.StatusOK, pageData{Title: "Rendimiento", Nav: "throughput", View: v})
}
