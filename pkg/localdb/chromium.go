package localdb

import (
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
	return installed("chromium", find)
}
