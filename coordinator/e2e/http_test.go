package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/domain"
	"github.com/nominacl/consolidation/pkg/grpcx"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// httpAPI is a client of the coordinator's HTTP/JSON API (HTTP_ADDR), through
// Go's net/http, as any HTTP client would call it.
type httpAPI struct {
	t      *testing.T
	base   string
	client *http.Client
}

// jsonObject is a JSON object as a client decodes it: int64 fields are
// strings, enums their names.
type jsonObject = map[string]any

func newHTTPAPI(t *testing.T, addr string, files *grpcx.TLSFiles) httpAPI {
	t.Helper()
	if files == nil {
		return httpAPI{t: t, base: "http://" + addr, client: &http.Client{}}
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(files.CA)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	transport := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{cert}, RootCAs: roots}}
	t.Cleanup(transport.CloseIdleConnections)
	return httpAPI{t: t, base: "https://" + addr, client: &http.Client{Transport: transport}}
}

// call sends one request (body, when not empty, as JSON) and returns the status
// code and the decoded JSON body.
func (h httpAPI) call(method, path, body string) (int, jsonObject) {
	h.t.Helper()
	resp := h.send(method, path, body)
	defer resp.Body.Close()
	require.Equal(h.t, "application/json", resp.Header.Get("Content-Type"))
	var out jsonObject
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&out), "%s %s", method, path)
	return resp.StatusCode, out
}

// stream sends a GET to a streaming method and reads its newline-delimited JSON
// to the end: the messages ({"result": ...} lines) and the status that ended
// the stream, when one did ({"error": ...}).
func (h httpAPI) stream(path string) (code int, results []jsonObject, streamErr jsonObject) {
	h.t.Helper()
	resp := h.send(http.MethodGet, path, "")
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 16<<20)
	for lines.Scan() {
		var line struct {
			Result jsonObject `json:"result"`
			Error  jsonObject `json:"error"`
		}
		require.NoError(h.t, json.Unmarshal(lines.Bytes(), &line), "line %q", lines.Text())
		if line.Error != nil {
			require.False(h.t, lines.Scan(), "a line after the error")
			return resp.StatusCode, results, line.Error
		}
		require.NotNil(h.t, line.Result, "line %q", lines.Text())
		results = append(results, line.Result)
	}
	require.NoError(h.t, lines.Err())
	return resp.StatusCode, results, nil
}

func (h httpAPI) send(method, path, body string) *http.Response {
	h.t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	h.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, reader)
	require.NoError(h.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err, "%s %s", method, path)
	return resp
}

// requireStatus checks a refusal's HTTP status and body: the gRPC code, and the
// ErrorInfo reason among its details.
func requireStatus(t *testing.T, httpCode int, body jsonObject, wantHTTP int, wantCode codes.Code, wantReason string) {
	t.Helper()
	require.Equal(t, wantHTTP, httpCode, "%v", body)
	require.Equal(t, float64(wantCode), body["code"], "%v", body)
	require.NotEmpty(t, body["message"])
	if wantReason == "" {
		return
	}
	details, _ := body["details"].([]any)
	for _, d := range details {
		d := d.(jsonObject)
		if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			require.Equal(t, wantReason, d["reason"], "%v", body)
			require.Equal(t, engine.ErrorDomain, d["domain"])
			return
		}
	}
	t.Fatalf("no ErrorInfo in %v", body)
}

// field walks nested objects: field(o, "consolidation", "status").
func field(o jsonObject, path ...string) any {
	var v any = o
	for _, p := range path {
		m, ok := v.(jsonObject)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestHTTPAPI calls every route of the HTTP/JSON API of a plaintext coordinator
// with net/http: consolidate, watch to the end as NDJSON, get, the closing's
// latest run, list, explain, export, cancel, and refusals with their status
// codes and ErrorInfo reasons.
func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	httpAddr := freeAddr(t)
	// Chunk 9 exists only in the run Cancel starts (ten chunks of ten): it stalls
	// there, so that run is still running when it is cancelled.
	c := newCluster(t, clusterOptions{workers: 2, coordEnv: []string{"HTTP_ADDR=" + httpAddr},
		workerEnv: []string{"FAULT_HOLD_BEFORE_COMMIT=9=30s"}})
	api := newHTTPAPI(t, httpAddr, nil)
	closing := c.generate(100, 41)
	want := expected(t, c.pool, closing)
	closingPath := "/v1/closings/" + itoa(closing)

	code, started := api.call(http.MethodPost, closingPath+":consolidate", `{"chunk_size": 50, "request_id": "http-1"}`)
	require.Equal(t, http.StatusOK, code, "%v", started)
	runID := started["consolidation_id"].(string)
	require.NotEqual(t, "0", runID)
	require.Equal(t, itoa(closing), started["closing_id"])
	require.Equal(t, float64(2), started["total_chunks"])
	require.Equal(t, float64(100), started["total_employees"])
	require.Equal(t, string(domain.EstadoConsolidando), started["estado"])

	t.Run("WatchStreamsNDJSONToTheEnd", func(t *testing.T) {
		code, msgs, streamErr := api.stream("/v1/consolidations/" + runID + ":watch")
		require.Equal(t, http.StatusOK, code)
		require.Nil(t, streamErr)
		require.NotEmpty(t, msgs)
		for _, m := range msgs[:len(msgs)-1] {
			require.Nil(t, m["final"], "only the last message holds final")
		}
		final := msgs[len(msgs)-1]
		require.Equal(t, "RUN_STATUS_SUCCEEDED", field(final, "final", "status"), "%v", final)
		require.Equal(t, float64(100), field(final, "final", "employees_consolidated"))
		require.Equal(t, float64(2), field(final, "progress", "chunks_done"))
		requireResultsEqual(t, c.pool, closing, want)
	})

	t.Run("GetAndLatest", func(t *testing.T) {
		code, got := api.call(http.MethodGet, "/v1/consolidations/"+runID, "")
		require.Equal(t, http.StatusOK, code, "%v", got)
		require.Equal(t, runID, field(got, "consolidation", "consolidation_id"))
		require.Equal(t, "RUN_STATUS_SUCCEEDED", field(got, "consolidation", "status"))
		require.Equal(t, string(domain.EstadoConsolidados), field(got, "consolidation", "estado"))
		require.Equal(t, true, field(got, "consolidation", "control_totals", "verified"))
		require.Equal(t, float64(100), field(got, "consolidation", "metrics", "total_empleados"))
		require.Equal(t, "http-1", field(got, "consolidation", "request_id"))

		code, latest := api.call(http.MethodGet, closingPath+"/consolidation", "")
		require.Equal(t, http.StatusOK, code, "%v", latest)
		require.Equal(t, got, latest)
	})

	t.Run("List", func(t *testing.T) {
		q := url.Values{"closing_id": {itoa(closing)}, "estado": {string(domain.EstadoConsolidados)}, "page_size": {"5"}}
		code, list := api.call(http.MethodGet, "/v1/consolidations?"+q.Encode(), "")
		require.Equal(t, http.StatusOK, code, "%v", list)
		runs := list["consolidations"].([]any)
		require.Len(t, runs, 1)
		require.Equal(t, runID, runs[0].(jsonObject)["consolidation_id"])
		require.Equal(t, "", list["next_page_token"])

		q.Set("started_after", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		code, list = api.call(http.MethodGet, "/v1/consolidations?"+q.Encode(), "")
		require.Equal(t, http.StatusOK, code, "%v", list)
		require.Empty(t, list["consolidations"])
	})

	t.Run("Explain", func(t *testing.T) {
		rut, rec := want[0].RUT, want[0]
		code, ex := api.call(http.MethodGet, closingPath+"/employees/"+url.PathEscape(rut)+":explain", "")
		require.Equal(t, http.StatusOK, code, "%v", ex)
		require.Equal(t, rut, ex["rut"])
		require.Equal(t, itoa(rec.EmpleadoOrigenID), ex["employee_id"])
		require.Equal(t, itoa(int64(rec.LiquidoPagar)), field(ex, "stored", "liquido_pagar_cents"))
		require.Equal(t, field(ex, "computed", "liquido_pagar_cents"), field(ex, "stored", "liquido_pagar_cents"))
		require.NotEmpty(t, ex["concepts"])

		code, refused := api.call(http.MethodGet, closingPath+"/employees/1-9:explain", "")
		requireStatus(t, code, refused, http.StatusNotFound, codes.NotFound, engine.ReasonEmployeeNotFound)
	})

	t.Run("Export", func(t *testing.T) {
		code, batches, streamErr := api.stream(closingPath + "/consolidation:export")
		require.Equal(t, http.StatusOK, code)
		require.Nil(t, streamErr)
		var ruts []string
		for _, b := range batches {
			for _, e := range b["employees"].([]any) {
				ruts = append(ruts, e.(jsonObject)["rut"].(string))
			}
		}
		require.Len(t, ruts, len(want))
		for i := range want {
			require.Equal(t, want[i].RUT, ruts[i], "export in RUT order")
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		// The closing is datos_consolidados: a run without force may not start.
		code, refused := api.call(http.MethodPost, closingPath+":consolidate", `{}`)
		requireStatus(t, code, refused, http.StatusBadRequest, codes.FailedPrecondition, engine.ReasonEstadoMayNotStart)

		code, refused = api.call(http.MethodGet, "/v1/consolidations/987654321", "")
		requireStatus(t, code, refused, http.StatusNotFound, codes.NotFound, engine.ReasonRunNotFound)

		// A refusal of a streaming method comes before the first line.
		code, msgs, streamErr := api.stream("/v1/consolidations/987654321:watch")
		require.Empty(t, msgs)
		requireStatus(t, code, streamErr, http.StatusNotFound, codes.NotFound, engine.ReasonRunNotFound)

		// A request the transcoder cannot read: a path parameter that is no number.
		code, refused = api.call(http.MethodGet, "/v1/consolidations/abc", "")
		requireStatus(t, code, refused, http.StatusBadRequest, codes.InvalidArgument, "")
	})

	t.Run("Cancel", func(t *testing.T) {
		other := c.generate(100, 42)
		code, started := api.call(http.MethodPost, "/v1/closings/"+itoa(other)+":consolidate", `{"chunkSize": 10}`)
		require.Equal(t, http.StatusOK, code, "%v", started)
		require.Equal(t, float64(10), started["total_chunks"])
		otherID := started["consolidation_id"].(string)
		id, err := parseInt64(otherID)
		require.NoError(t, err)
		c.waitFor(id, time.Minute, "every chunk but the stalled one done", func(r *consolidationv1.Consolidation) bool {
			return r.GetChunksSucceeded() == 9
		})
		code, cancelled := api.call(http.MethodPost, "/v1/consolidations/"+otherID+":cancel", "")
		require.Equal(t, http.StatusOK, code, "%v", cancelled)
		require.Equal(t, string(domain.EstadoCancelada), field(cancelled, "consolidation", "estado"))
		require.Equal(t, "RUN_STATUS_CANCELLED", field(c.httpGet(api, otherID), "consolidation", "status"))

		// Cancelling it again: it has ended.
		code, refused := api.call(http.MethodPost, "/v1/consolidations/"+otherID+":cancel", "")
		requireStatus(t, code, refused, http.StatusBadRequest, codes.FailedPrecondition, engine.ReasonRunEnded)
	})
}

func (c *cluster) httpGet(api httpAPI, runID string) jsonObject {
	c.t.Helper()
	code, got := api.call(http.MethodGet, "/v1/consolidations/"+runID, "")
	require.Equal(c.t, http.StatusOK, code, "%v", got)
	return got
}

// TestHTTPAPIOnMTLS runs the HTTP API of a coordinator on mTLS: the HTTP port
// verifies the caller's certificate as the gRPC port does, and the same
// policy, by gRPC method name, decides: an identity allowed a method on gRPC is
// allowed it on HTTP, one denied is denied; the audit names the certificate's
// identity.
func TestHTTPAPIOnMTLS(t *testing.T) {
	t.Parallel()
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	// The local cluster's policy, and a viewer that may only read runs.
	const viewerIdentity = "spiffe://payroll/viewer"
	policy := dev.CoordinatorPolicy + ".http"
	require.NoError(t, os.WriteFile(policy, []byte(launch.CoordinatorPolicy+`  - identities: ["`+viewerIdentity+`"]
    methods:
      - consolidation.v1.ConsolidationService/GetConsolidation
      - consolidation.v1.ConsolidationService/ListConsolidations
      - consolidation.v1.ConsolidationService/WatchConsolidation
`), 0o600))
	httpAddr := freeAddr(t)
	c := newCluster(t, clusterOptions{workers: 1, tls: dev,
		coordEnv: []string{"HTTP_ADDR=" + httpAddr, grpcx.EnvAuthzPolicy + "=" + policy}})
	viewer := issue(t, dev, "viewer", viewerIdentity)
	outsider := issue(t, dev, "dashboard", "spiffe://payroll/dashboard")
	app, view, out := newHTTPAPI(t, httpAddr, &dev.App), newHTTPAPI(t, httpAddr, &viewer), newHTTPAPI(t, httpAddr, &outsider)

	closing := c.generate(30, 43)
	code, started := app.call(http.MethodPost, "/v1/closings/"+itoa(closing)+":consolidate", `{}`)
	require.Equal(t, http.StatusOK, code, "%v", started)
	runID := started["consolidation_id"].(string)
	code, msgs, streamErr := app.stream("/v1/consolidations/" + runID + ":watch")
	require.Equal(t, http.StatusOK, code)
	require.Nil(t, streamErr)
	final := msgs[len(msgs)-1]
	require.Equal(t, "RUN_STATUS_SUCCEEDED", field(final, "final", "status"), "%v", final)
	require.Equal(t, launch.AppIdentity, field(final, "final", "requested_by"), "the identity is the HTTP client's certificate's")
	requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"identity":"`+launch.AppIdentity+`"`,
		`"method":"/consolidation.v1.ConsolidationService/Consolidate"`, `"consolidation_id":`+runID, `"code":"OK"`)

	// The viewer, on gRPC and on HTTP: reads allowed, the rest denied.
	grpcViewer := consolidationv1.NewConsolidationServiceClient(dialAs(t, c.coord.Addr, viewer))
	ctx := context.Background()
	id, err := parseInt64(runID)
	require.NoError(t, err)
	_, err = grpcViewer.GetConsolidation(ctx, runRef(id))
	require.NoError(t, err)
	code, got := view.call(http.MethodGet, "/v1/consolidations/"+runID, "")
	require.Equal(t, http.StatusOK, code, "%v", got)
	require.Equal(t, launch.AppIdentity, field(got, "consolidation", "requested_by"))
	code, list := view.call(http.MethodGet, "/v1/consolidations?closing_id="+itoa(closing), "")
	require.Equal(t, http.StatusOK, code, "%v", list)
	require.Len(t, list["consolidations"], 1)

	_, err = grpcViewer.Consolidate(ctx, &consolidationv1.ConsolidateRequest{ClosingId: closing, Force: true})
	requireCode(t, codes.PermissionDenied, err)
	code, refused := view.call(http.MethodPost, "/v1/closings/"+itoa(closing)+":consolidate", `{"force": true}`)
	requireStatus(t, code, refused, http.StatusForbidden, codes.PermissionDenied, "")
	require.Contains(t, refused["message"], viewerIdentity)
	requireLogged(t, c, "coordinator.log", `"msg":"audit"`, `"identity":"`+viewerIdentity+`"`,
		`"method":"/consolidation.v1.ConsolidationService/Consolidate"`, `"code":"PermissionDenied"`)

	_, err = grpcViewer.CancelConsolidation(ctx, &consolidationv1.CancelConsolidationRequest{
		Ref: &consolidationv1.CancelConsolidationRequest_ConsolidationId{ConsolidationId: id}})
	requireCode(t, codes.PermissionDenied, err)
	code, refused = view.call(http.MethodPost, "/v1/consolidations/"+runID+":cancel", "")
	requireStatus(t, code, refused, http.StatusForbidden, codes.PermissionDenied, "")

	code, batches, streamErr := view.stream("/v1/closings/" + itoa(closing) + "/consolidation:export")
	require.Empty(t, batches)
	requireStatus(t, code, streamErr, http.StatusForbidden, codes.PermissionDenied, "")

	// An identity the policy does not name is denied everything.
	code, refused = out.call(http.MethodGet, "/v1/consolidations/"+runID, "")
	requireStatus(t, code, refused, http.StatusForbidden, codes.PermissionDenied, "")

	// A header cannot stand in for a certificate: without one the handshake fails.
	noCert := newHTTPAPI(t, httpAddr, &viewer)
	noCert.client.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	req, err := http.NewRequest(http.MethodGet, noCert.base+"/v1/consolidations/"+runID, nil)
	require.NoError(t, err)
	req.Header.Set("Grpc-Metadata-Identity", launch.AppIdentity)
	req.Header.Set("X-Forwarded-Client-Cert", "URI="+launch.AppIdentity)
	_, err = noCert.client.Do(req)
	require.Error(t, err)

	// Plaintext HTTP on the TLS port gets nothing served.
	resp, err := http.Get("http://" + httpAddr + "/v1/consolidations/" + runID)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.False(t, bytes.Contains(body, []byte(runID)))
	}
}

func parseInt64(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }
