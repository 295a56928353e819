package bench

// Readings of /proc (Linux): a process's CPU seconds and peak resident memory,
// and the machine's busy and total CPU seconds.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procCPU is a process's user+system CPU seconds (/proc/PID/stat).
func procCPU(pid int) float64 {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

const clockTicks = 100 // USER_HZ on Linux

// machineCPU returns busy and total CPU seconds of the machine since boot (/proc/stat).
func machineCPU() (busy, total float64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 1
	}
	line, _, _ := strings.Cut(string(data), "\n")
	for i, v := range strings.Fields(line)[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		total += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy / clockTicks, total / clockTicks
}

// resetPeakRSS clears a process's VmHWM (Linux: "5" to clear_refs), so the next
// reading is the peak of this closing alone.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func peakRSS(pid int) int64 { return procStatus(pid, "VmHWM") }

// residentSplit is a process's resident memory now, split as the kernel counts
// it: anon (its heap, stacks and other private memory) and file (pages of its
// binary and other mapped files, shared and dropped under pressure).
func residentSplit(pid int) (anon, file int64) {
	return procStatus(pid, "RssAnon"), procStatus(pid, "RssFile")
}

// sampleResident reads a process's residentSplit every `every` until stop is
// called, and stop returns the highest of each part. The kernel keeps a peak of
// the whole (VmHWM) but not of its parts: a run that touches more of the
// binary's pages (file) and one that holds more heap (anon) have the same kind
// of peak, and only the parts tell them apart.
func sampleResident(pid int, every time.Duration) (stop func() (anon, file int64)) {
	done := make(chan struct{})
	var peakAnon, peakFile int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			a, f := residentSplit(pid)
			peakAnon, peakFile = max(peakAnon, a), max(peakFile, f)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		<-finished
		return peakAnon, peakFile
	}
}

// procStatus is a "kB" field of /proc/PID/status, in bytes (0 when missing).
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// statFields are the fields of /proc/PID/stat after the command name, from the
// state (field 3) on; nil when the process is gone.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

// postmasterOf is the parent of a PostgreSQL backend (its postmaster), 0 when
// the backend is not a process of this machine.
func postmasterOf(backend int) int {
	f := statFields(backend)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if strings.TrimSpace(string(comm)) != "postgres" {
		return 0 // a server elsewhere, whose backend's pid is some process here
	}
	return ppid
}

// serverCPU is the CPU seconds of a PostgreSQL server so far: its postmaster's
// own and its ended children's (cutime, cstime: the postmaster waits for every
// child), plus its live children's (backends, autovacuum, checkpointer, WAL
// writer). The difference of two readings is the server's CPU time between them,
// whichever sessions began or ended meanwhile.
func serverCPU(postmaster int) float64 {
	f := statFields(postmaster)
	if len(f) < 15 {
		return 0
	}
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		x, _ := strconv.ParseFloat(f[i], 64)
		ticks += x
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if c := statFields(pid); len(c) >= 13 && c[1] == strconv.Itoa(postmaster) {
			u, _ := strconv.ParseFloat(c[11], 64)
			st, _ := strconv.ParseFloat(c[12], 64)
			ticks += u + st
		}
	}
	return ticks / clockTicks
}

// treeCPU is the CPU seconds of a process and all its descendants so far: each
// one's own (utime, stime) and its ended children's (cutime, cstime). A live
// child's time is not in its parent's cutime, so nothing counts twice; the
// difference of two readings is the tree's CPU time between them, while the
// root lives. 0 when pid is 0 or gone.
func treeCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	children := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(p); len(f) >= 15 {
			children[f[1]] = append(children[f[1]], p)
		}
	}
	var ticks float64
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[strconv.Itoa(p)]...)
		f := statFields(p)
		if len(f) < 15 {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			x, _ := strconv.ParseFloat(f[i], 64)
			ticks += x
		}
	}
	return ticks / clockTicks
}

// loadAverage is the machine's load average over the last minute (/proc/loadavg).
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	x, _ := strconv.ParseFloat(f[0], 64)
	return x
}
