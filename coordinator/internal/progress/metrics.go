package progress

import "strconv"

// Metrics are a closing's figures at its run's end, as the payroll application
// shows them (the old Celery design's metrics hash).
type Metrics struct {
	EmployeesPerSecond float64 // throughput_empleados_sec
	RecordsPerSecond   float64 // throughput_registros_sec
	PeakMemoryMB       float64 // memoria_pico_mb
	CPUPercent         float64 // cpu_promedio_percent
	TotalSeconds       float64 // tiempo_total
	Workers            int     // workers_utilizados
}

// fields renders metrics as the old Celery design's metrics hash.
func (m Metrics) fields() map[string]string {
	return map[string]string{
		"throughput_empleados_sec": strconv.FormatFloat(m.EmployeesPerSecond, 'f', 1, 64),
		"throughput_registros_sec": strconv.FormatFloat(m.RecordsPerSecond, 'f', 1, 64),
		"memoria_pico_mb":          strconv.FormatFloat(m.PeakMemoryMB, 'f', 1, 64),
		"cpu_promedio_percent":     strconv.FormatFloat(m.CPUPercent, 'f', 1, 64),
		"tiempo_total":             strconv.FormatFloat(m.TotalSeconds, 'f', 3, 64),
		"workers_utilizados":       strconv.Itoa(m.Workers),
	}
}
