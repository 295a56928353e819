package localdb

import (
	"fmt"
	"os/exec"
)

// Chromium returns the path of a Chromium (or Chrome) binary for the
// dashboard's browser tests, installing Debian's chromium with apt-get when
// none is found and we are root, as PostgreSQL and Redis are installed.
func Chromium() (string, error) {
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p, nil
	}
	if err := aptInstall(func() bool { return find() != "" }, "chromium"); err != nil {
		return "", fmt.Errorf("chromium not found: %w", err)
	}
	if p := find(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("chromium was installed but is still not on PATH")
}
