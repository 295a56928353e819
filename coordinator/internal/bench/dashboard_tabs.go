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
// page and follow its server-sent events, progress and details, to the end. The
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

// openedBefore has one simulated tab open an ended run's page and read its
// stream to the end (Config.DashboardOpened).
func openedBefore(ctx context.Context, addr string, runID int64) error {
	if err := tab(ctx, fmt.Sprintf("http://%s/ui/runs/%d", addr, runID)); err != nil {
		return fmt.Errorf("opening run %d's page first: %w", runID, err)
	}
	return nil
}

// tab is one simulated tab on a run page until the run's final event.
func tab(ctx context.Context, page string) error {
	resp, err := httpGet(ctx, page)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp, err = httpGet(ctx, page+"/events")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The page's details come over the stream too; the run's last ones before
	// its final progress event.
	var event string
	var details []byte
	detailsAtEnd := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		if line == "" { // an event ends
			if event == "details" {
				detailsAtEnd = len(details) > 0
			}
			event, details = "", details[:0]
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || event != "progress" {
			if ok && event == "details" {
				details = append(details, data...)
			}
			continue
		}
		var ev struct {
			Final bool `json:"final"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return err
		}
		if ev.Final {
			if !detailsAtEnd {
				return fmt.Errorf("%s: the run's final progress came without its details before it", page)
			}
			return nil
		}
		detailsAtEnd = false
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: the event stream ended before the run's final progress", page)
}
