package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/progress"
)

// eventEvery is the least time between two progress events of one stream (the
// final one is sent at once). A skipped reading is followed by the hub's next
// within a second. The hub reads a run at each chunk's end: about 15 times a
// second on a 100,000-employee run here, each an event for every tab before
// (docs/benchmarks.md, "The dashboard").
const eventEvery = 500 * time.Millisecond

// runEvents streams a run's progress as server-sent events ("progress", the
// last one with final set), from the engine's watch hub: every tab watching a
// run shares the one reading the hub makes of it, as WatchConsolidation streams
// do. The stream ends when the run has ended.
func (d *Dashboard) runEvents(w http.ResponseWriter, r *http.Request) {
	runID, ok := d.pathID(w, r, "id")
	if !ok || !d.allowRead(w, r, methodWatch) {
		return
	}
	// The run as the page that opens this stream has just seen it: its view,
	// shared with the run's other tabs.
	v, err := d.views.get(r.Context(), runID, false, func(ctx context.Context) (runView, error) { return d.runView(ctx, runID) })
	if err != nil {
		d.engineError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a buffering proxy would hold the events
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	// The browser reconnects after 5 s when the stream breaks off before the end.
	if _, err := fmt.Fprint(w, "retry: 5000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	// Only the run's row is kept while the stream lasts, not the view (its
	// rendered details): a stream lasts as long as the run.
	opened := v.Run
	var sent time.Time
	err = d.engine.Watch(r.Context(), engine.Ref{RunID: runID}, func(p progress.Snapshot, final *engine.Report) error {
		// At most one event every eventEvery but the final one: the hub reads a
		// large run at every chunk's end, many times a second, and a tab draws
		// twice a second at most.
		if final == nil && time.Since(sent) < eventEvery {
			return nil
		}
		sent = time.Now()
		run := opened
		if final != nil {
			run = final.Run
		}
		data, err := json.Marshal(newProgressEvent(p, final, run))
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: progress\ndata: %s\n\n", data); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && r.Context().Err() == nil {
		// An ended stream says why; the page then stops listening.
		_, _ = fmt.Fprint(w, "event: gone\ndata: {}\n\n")
		_ = rc.Flush()
	}
}
