package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/store"
)

// Page sizes of List (AIP-158).
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// runEstados are the estados a run can be in, the values List filters on.
var runEstados = []domain.Estado{domain.EstadoConsolidando, domain.EstadoConsolidados, domain.EstadoParcial,
	domain.EstadoError, domain.EstadoCancelada, domain.EstadoTimeout, domain.EstadoErrorRecursos}

// ListRequest is a validated ListConsolidations call.
type ListRequest struct {
	Filter    store.RunFilter
	PageSize  int    // 0: DefaultPageSize; over MaxPageSize: MaxPageSize
	PageToken string // "": the first page
}

// List returns a page of runs, newest first, and the token of the next page
// ("" on the last). A page token is opaque to the caller: it names the last run
// listed and the filter it was listed with, so a token used with another filter
// is refused.
func (e *Engine) List(ctx context.Context, req ListRequest) ([]store.Run, string, error) {
	f := req.Filter
	if req.PageSize < 0 {
		return nil, "", InvalidArgument("page_size", "page_size must not be negative")
	}
	if f.Estado != "" && !slices.Contains(runEstados, f.Estado) {
		return nil, "", InvalidArgument("estado", "estado %q is not one a run can be in (%s)", f.Estado, joinEstados())
	}
	if !f.StartedAfter.IsZero() && !f.StartedBefore.IsZero() && !f.StartedAfter.Before(f.StartedBefore) {
		return nil, "", InvalidArgument("started_before", "started_before must be later than started_after")
	}
	after, err := decodePageToken(req.PageToken, f)
	if err != nil {
		return nil, "", err
	}
	size := req.PageSize
	if size == 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	runs, err := e.records.ListRuns(ctx, f, after, size+1) // one more: is there a next page?
	if err != nil {
		return nil, "", err
	}
	if len(runs) <= size {
		return runs, "", nil
	}
	runs = runs[:size]
	last := runs[size-1]
	return runs, encodePageToken(store.RunCursor{StartedAt: last.StartedAt, ID: last.ID}, f), nil
}

func joinEstados() string {
	s := make([]string, len(runEstados))
	for i, e := range runEstados {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}

// A page token is base64url("v1.<filter hash>.<started_at unix µs>.<run id>").
const pageTokenVersion = "v1"

func filterHash(f store.RunFilter) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d|%d", f.ClosingID, f.Estado, unixMicro(f.StartedAfter), unixMicro(f.StartedBefore))
	return strconv.FormatUint(h.Sum64(), 36)
}

func unixMicro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func encodePageToken(c store.RunCursor, f store.RunFilter) string {
	raw := strings.Join([]string{pageTokenVersion, filterHash(f), strconv.FormatInt(c.StartedAt.UnixMicro(), 10),
		strconv.FormatInt(c.ID, 10)}, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodePageToken(token string, f store.RunFilter) (store.RunCursor, error) {
	if token == "" {
		return store.RunCursor{}, nil
	}
	invalid := InvalidArgument("page_token", "page_token is not one this service returned")
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return store.RunCursor{}, invalid
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 4 || parts[0] != pageTokenVersion {
		return store.RunCursor{}, invalid
	}
	if parts[1] != filterHash(f) {
		return store.RunCursor{}, InvalidArgument("page_token",
			"page_token was returned for other filters; repeat the request's filters or start again without it")
	}
	micros, err1 := strconv.ParseInt(parts[2], 10, 64)
	id, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || id <= 0 {
		return store.RunCursor{}, invalid
	}
	return store.RunCursor{StartedAt: time.UnixMicro(micros), ID: id}, nil
}
