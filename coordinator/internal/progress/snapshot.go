package progress

import (
	"math"
	"strconv"
	"time"
)

// Snapshot is a run's progress, the old Celery design's progress hash in numbers.
type Snapshot struct {
	TotalChunks    int
	ChunksDone     int
	EmployeesDone  int
	TotalEmployees int
	Records        int64
	Percent        float64
	Elapsed        time.Duration
	ETA            time.Duration
}

// Compute fills percent, elapsed and ETA from the counts and the start time.
func Compute(s Snapshot, startedAt, now time.Time) Snapshot {
	s.Elapsed = max(0, now.Sub(startedAt))
	switch {
	case s.TotalChunks == 0:
		s.Percent = 100
	default:
		s.Percent = math.Round(1000*float64(s.ChunksDone)/float64(s.TotalChunks)) / 10
	}
	if s.ChunksDone > 0 && s.ChunksDone < s.TotalChunks {
		per := s.Elapsed / time.Duration(s.ChunksDone)
		s.ETA = per * time.Duration(s.TotalChunks-s.ChunksDone)
	}
	return s
}

// fields renders a snapshot as the old Celery design's progress hash.
func (s Snapshot) fields() map[string]string {
	return map[string]string{
		"total_chunks":         strconv.Itoa(s.TotalChunks),
		"chunks_completados":   strconv.Itoa(s.ChunksDone),
		"progreso_porcentaje":  strconv.FormatFloat(s.Percent, 'f', 1, 64),
		"empleados_procesados": strconv.Itoa(s.EmployeesDone),
		"total_empleados":      strconv.Itoa(s.TotalEmployees),
		"registros_creados":    strconv.FormatInt(s.Records, 10),
		"tiempo_transcurrido":  strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 3, 64),
		"eta_restante":         strconv.FormatFloat(s.ETA.Seconds(), 'f', 3, 64),
	}
}

// derivedFields are the fields of the progress hash computed from its counters
// (percent, elapsed, ETA): what Refresh writes, so it never writes back counters
// it read while a concurrent ChunkEnded was moving them.
func (s Snapshot) derivedFields() map[string]string {
	f := s.fields()
	return map[string]string{
		"progreso_porcentaje": f["progreso_porcentaje"],
		"tiempo_transcurrido": f["tiempo_transcurrido"],
		"eta_restante":        f["eta_restante"],
	}
}

// parseSnapshot reads a progress hash; ok is false when it is missing or partial.
func parseSnapshot(f map[string]string) (s Snapshot, ok bool) {
	ints := []struct {
		key string
		dst *int
	}{{"total_chunks", &s.TotalChunks}, {"chunks_completados", &s.ChunksDone},
		{"empleados_procesados", &s.EmployeesDone}, {"total_empleados", &s.TotalEmployees}}
	for _, it := range ints {
		v, err := strconv.Atoi(f[it.key])
		if err != nil {
			return Snapshot{}, false
		}
		*it.dst = v
	}
	s.Records, _ = strconv.ParseInt(f["registros_creados"], 10, 64)
	s.Percent, _ = strconv.ParseFloat(f["progreso_porcentaje"], 64)
	el, _ := strconv.ParseFloat(f["tiempo_transcurrido"], 64)
	eta, _ := strconv.ParseFloat(f["eta_restante"], 64)
	s.Elapsed = time.Duration(el * float64(time.Second))
	s.ETA = time.Duration(eta * float64(time.Second))
	return s, true
}
