// Package readload is the load issue 21 (point 3) puts on a run: callers
// exporting and dry-running (validate_only) another, consolidated closing, each
// waiting the RetryInfo's delay when shed, and ProcessChunk calls with forged
// attempt tokens sent to the workers. The end-to-end test and the benchmark
// (docs/benchmarks.md, "Reads and junk calls during a run") drive the same load.
package readload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nominacl/consolidation/coordinator/internal/server"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// Config says what load to put on a run.
type Config struct {
	Client  consolidationv1.ConsolidationServiceClient
	Workers []consolidationv1.WorkerServiceClient // the junk calls go round them
	// ReadClosing is the closing exported and dry-run: consolidated before (an
	// export is refused while its closing runs).
	ReadClosing int64
	// Exports and DryRuns are how many callers keep exporting and dry-running
	// ReadClosing until Stop; Junk how many ProcessChunk calls with a forged
	// attempt token are sent, once each, as the load starts.
	Exports, DryRuns, Junk int
}

// Run is the run the junk calls name: its id, its closing and its chunks.
type Run struct {
	ID, Closing int64
	Chunks      int32
}

// Counts are the answers the load got.
type Counts struct {
	// Reads are the exports' and dry runs' answers by code; ShedBare the
	// RESOURCE_EXHAUSTED among them without a RetryInfo (the rest carried one).
	Reads    map[codes.Code]int
	ShedBare int
	// Unavailable counts the UNAVAILABLE reads by message.
	Unavailable map[string]int
	// Junk are the forged ProcessChunk calls' answers by code.
	Junk map[codes.Code]int
}

// Load is the load running on a run until Stop.
type Load struct {
	running  atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	counts   Counts
	shedBare atomic.Int64
}

// Start starts the readers and sends the junk calls naming run. Each reader
// calls at least once and repeats its call until Stop, waiting the RetryInfo's
// delay when shed (server.ReadRetryDelay when the answer carries none), as a
// well-behaved client does.
func Start(ctx context.Context, cfg Config, run Run) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cancel: cancel, counts: Counts{Reads: map[codes.Code]int{}, Unavailable: map[string]int{}, Junk: map[codes.Code]int{}}}
	l.running.Store(true)
	export := func() error {
		stream, err := cfg.Client.ExportConsolidation(ctx, &consolidationv1.ExportConsolidationRequest{ClosingId: cfg.ReadClosing})
		if err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	dryRun := func() error {
		_, err := cfg.Client.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: cfg.ReadClosing, Force: true, ValidateOnly: true})
		return err
	}
	for range cfg.Exports {
		l.wg.Go(func() { l.read(ctx, export) })
	}
	for range cfg.DryRuns {
		l.wg.Go(func() { l.read(ctx, dryRun) })
	}
	for i := range cfg.Junk {
		if len(cfg.Workers) == 0 || run.Chunks <= 0 {
			break
		}
		l.wg.Go(func() {
			_, err := cfg.Workers[i%len(cfg.Workers)].ProcessChunk(ctx, &consolidationv1.ProcessChunkRequest{ConsolidationId: run.ID,
				ClosingId: run.Closing, ChunkIndex: rand.Int32N(run.Chunks), AttemptToken: rand.Int64N(1<<62) + 1})
			l.mu.Lock()
			l.counts.Junk[status.Code(err)]++
			l.mu.Unlock()
		})
	}
	return l
}

// read repeats call until Stop (at least once), noting each answer.
func (l *Load) read(ctx context.Context, call func() error) {
	for n := 0; n == 0 || l.running.Load(); n++ {
		err := call()
		if ctx.Err() != nil && !l.running.Load() {
			return // cut short by Stop: not an answer of the service
		}
		st := status.Convert(err)
		l.mu.Lock()
		l.counts.Reads[st.Code()]++
		if st.Code() == codes.Unavailable {
			l.counts.Unavailable[st.Message()]++
		}
		l.mu.Unlock()
		if st.Code() != codes.ResourceExhausted {
			continue
		}
		delay := RetryDelay(err)
		if delay <= 0 {
			l.shedBare.Add(1)
			delay = server.ReadRetryDelay
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// RetryDelay is the delay err's RetryInfo asks for, 0 when it carries none.
func RetryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// Stop tells the readers to stop after their call in progress, waits for them
// and the junk calls (cutting short whatever is still waiting after grace), and
// returns what they were answered.
func (l *Load) Stop(grace time.Duration) Counts {
	l.running.Store(false)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		l.cancel()
		<-done
	}
	l.cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts
	c.ShedBare = int(l.shedBare.Load())
	return c
}

// DialWorkers returns a client of each worker, for Config.Workers, and a func
// closing their connections.
func DialWorkers(addrs []string) ([]consolidationv1.WorkerServiceClient, func(), error) {
	var clients []consolidationv1.WorkerServiceClient
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for _, a := range addrs {
		conn, err := grpcx.Dial(a)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dialing worker %s: %w", a, err)
		}
		conns = append(conns, conn)
		clients = append(clients, consolidationv1.NewWorkerServiceClient(conn))
	}
	return clients, closeAll, nil
}
