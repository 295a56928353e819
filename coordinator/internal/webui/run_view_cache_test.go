package webui

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// viewCacheFixture is a cache and a build that counts its builds and returns a
// view running or not.
type viewCacheFixture struct {
	t       *testing.T
	cache   *runViewCache
	running atomic.Bool
	builds  atomic.Int32
}

func newViewCacheFixture(t *testing.T, ttl time.Duration, running bool) *viewCacheFixture {
	f := &viewCacheFixture{t: t, cache: newRunViewCache(ttl)}
	f.running.Store(running)
	return f
}

func (f *viewCacheFixture) build(context.Context) (runView, error) {
	f.builds.Add(1)
	time.Sleep(10 * time.Millisecond) // the tabs that ask meanwhile wait for this build
	return runView{Running: f.running.Load()}, nil
}

// ask has n tabs ask for run 7's view at once.
func (f *viewCacheFixture) ask(n int, ended bool) []runView {
	views := make([]runView, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := f.cache.get(context.Background(), 7, ended, f.build)
			require.NoError(f.t, err)
			views[i] = v
		})
	}
	wg.Wait()
	return views
}

// TestRunViewCache: the tabs of a run share its view's builds (docs/benchmarks.md,
// "The dashboard").
func TestRunViewCache(t *testing.T) {
	t.Parallel()

	t.Run("TabsShareOneBuildOfARunningRun", func(t *testing.T) {
		t.Parallel()
		f := newViewCacheFixture(t, time.Hour, true)
		f.ask(20, false)
		require.Equal(t, int32(1), f.builds.Load())
	})

	t.Run("ARunningViewIsBuiltAgainAfterTTL", func(t *testing.T) {
		t.Parallel()
		f := newViewCacheFixture(t, time.Millisecond, true)
		f.ask(1, false)
		time.Sleep(5 * time.Millisecond)
		f.ask(1, false)
		require.Equal(t, int32(2), f.builds.Load())
	})

	t.Run("ARunningViewIsLetGoOnceStale", func(t *testing.T) {
		t.Parallel()
		f := newViewCacheFixture(t, time.Millisecond, true)
		f.ask(1, false)
		held := func() bool {
			f.cache.mu.Lock()
			e := f.cache.entries[7]
			f.cache.mu.Unlock()
			e.mu.Lock()
			defer e.mu.Unlock()
			return !e.at.IsZero()
		}
		require.Eventually(t, func() bool { return !held() }, time.Minute, time.Millisecond,
			"a running run's stale view is still held")
		// An ended run's view is kept.
		f.running.Store(false)
		f.ask(1, true)
		time.Sleep(10 * time.Millisecond)
		require.True(t, held(), "an ended run's view was let go")
	})

	t.Run("TabsThatSawTheEndShareOneBuildOfTheEndedRun", func(t *testing.T) {
		t.Parallel()
		f := newViewCacheFixture(t, time.Hour, true)
		f.ask(1, false)        // the page, while running
		f.running.Store(false) // the run ends
		for _, v := range f.ask(20, true) {
			require.False(t, v.Running, "a tab that saw the end was given the running view")
		}
		require.Equal(t, int32(2), f.builds.Load())
		// An ended run's view is kept, whatever the ttl.
		require.False(t, f.ask(1, false)[0].Running)
		require.Equal(t, int32(2), f.builds.Load())
	})

	t.Run("ForgetBuildsAgain", func(t *testing.T) {
		t.Parallel()
		f := newViewCacheFixture(t, time.Hour, false)
		f.ask(1, false)
		f.cache.forget(7)
		f.ask(1, false)
		require.Equal(t, int32(2), f.builds.Load())
	})
}
