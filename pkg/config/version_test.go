package config

import (
	"encoding/json"
	"io"
	"os"
	"testing"
)

// TestLogLinesCarryTheVersion: a log line names the service and the version the
// build was stamped with. Not parallel: it swaps os.Stderr.
func TestLogLinesCarryTheVersion(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, version := os.Stderr, Version
	os.Stderr, Version = w, "v9.8.7"
	defer func() { os.Stderr, Version = stderr, version }()

	Logger("worker", "info").Info("started")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(out, &line); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if line["service"] != "worker" || line["version"] != "v9.8.7" {
		t.Fatalf("log line %s, want service worker and version v9.8.7", out)
	}
}
