package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// openTabs opens n simulated dashboard tabs on a run, each doing what the run
// page's script does (coordinator/internal/webui/static/dashboard.js): load the
// page, follow its server-sent events, and fetch the details again when the
// chunks done change, at most every 5 s, and once more at the end. The
// returned func waits for the tabs to see the end (or stops them when ctx
// ends) and returns the first error any met.
func openTabs(ctx context.Context, addr string, n int, runID int64) func() error {
	base := fmt.Sprintf("http://%s/ui/runs/%d", addr, runID)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = tab(ctx, base) })
	}
	return func() error {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second): // the end was seen by the client; tabs lagging that far are stuck
			cancel()
			<-done
		}
		cancel()
		return errors.Join(errs...)
	}
}

// tab is one simulated tab on a run page until the run's final event.
func tab(ctx context.Context, page string) error {
	get := func(url string) error {
		resp, err := httpGet(ctx, url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := get(page); err != nil {
		return err
	}
	resp, err := httpGet(ctx, page+"/events")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	lastDone, lastFetch := -1, time.Time{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			ChunksDone int  `json:"chunks_done"`
			Final      bool `json:"final"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return err
		}
		if ev.Final {
			return get(page + "/details?fin=1")
		}
		if ev.ChunksDone != lastDone && time.Since(lastFetch) >= 5*time.Second {
			lastDone, lastFetch = ev.ChunksDone, time.Now()
			if err := get(page + "/details"); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}
