package bench

// CPU and heap profiles of the services during a closing (-profile).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
)

// startProfiles starts a CPU profile of every service (ProfileSeconds long) and
// returns the function that waits for them and writes them to ProfileDir.
func startProfiles(ctx context.Context, cfg Config, services []*launch.Process, label string) func() error {
	errs := make(chan error, len(services))
	for _, p := range services {
		go func() {
			path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-%s.pprof", label, p.Name))
			errs <- fetchProfile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.PprofAddr, cfg.ProfileSeconds), path)
		}()
	}
	return func() error {
		var all []error
		for range services {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
}

func fetchProfile(ctx context.Context, url, path string) error {
	resp, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// httpGet sends a GET of url; it returns the response when it is 200 OK (the
// caller closes its body), an error naming the URL and the status otherwise.
func httpGet(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return resp, nil
}
