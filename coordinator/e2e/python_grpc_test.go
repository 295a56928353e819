package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/nominacl/consolidation/coordinator/internal/launch"
	"github.com/nominacl/consolidation/pkg/localdb"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

// pythonInterop drives a closing through testdata/django's gRPC client
// (nomina/grpc_client.py, grpcio) over mTLS as the payroll application, and
// prints what it saw as one JSON line.
const pythonInterop = `
import json, os
from consolidation.v1 import consolidation_pb2 as pb
from nomina.grpc_client import ConsolidationClient, ConsolidationError

def refusal(call):
    try:
        call()
    except ConsolidationError as e:
        return {"code": e.code.name, "reason": e.reason, "domain": e.domain, "metadata": e.metadata,
                "details": [type(d).__name__ for d in e.details]}
    return None

closing = int(os.environ["CLOSING"])
out = {}
with ConsolidationClient(os.environ["TARGET"], os.environ["CA"], os.environ["CERT"], os.environ["KEY"]) as c:
    started = c.consolidate(closing, chunk_size=100)
    out["started"] = {"consolidation_id": started.consolidation_id, "estado": started.estado,
                      "total_chunks": started.total_chunks, "total_employees": started.total_employees}
    chunks_done, final = [], None
    for msg in c.watch(consolidation_id=started.consolidation_id):
        if msg.HasField("progress"):
            chunks_done.append(msg.progress.chunks_done)
        if msg.HasField("final"):
            final = msg.final
    out["watched"] = {"chunks_done": chunks_done, "final_estado": final.estado if final else None,
                      "final_status": pb.RunStatus.Name(final.status) if final else None}
    got = c.get(consolidation_id=started.consolidation_id)
    out["got"] = {"consolidation_id": got.consolidation_id, "estado": got.estado,
                  "employees_consolidated": got.employees_consolidated, "records_created": got.records_created,
                  "requested_by": got.requested_by, "finished": got.HasField("finished_at")}
    out["latest"] = c.get(closing_id=closing).consolidation_id
    out["missing"] = refusal(lambda: c.consolidate(closing + 1000))
    out["again"] = refusal(lambda: c.consolidate(closing))
print(json.dumps(out))
`

// TestPythonGRPCClientOverMTLS is an interop check against a gRPC
// implementation that is not grpc-go: Debian's grpcio, with stubs Debian's protoc
// and grpc_python_plugin generate from the service's descriptors, over mTLS as
// the payroll application. It starts a run, watches it to its end, reads it, and
// reads two refusals' ErrorInfo from the status details.
func TestPythonGRPCClientOverMTLS(t *testing.T) {
	t.Parallel()
	py, err := localdb.FindPythonGRPC()
	require.NoError(t, err)
	stubs := pythonStubs(t, py)
	dev, err := launch.NewDevTLS(t.TempDir())
	require.NoError(t, err)
	c := newCluster(t, clusterOptions{workers: 2, tls: dev})
	closing := c.generate(300, 144)

	app, err := filepath.Abs(filepath.Join("..", "..", "testdata", "django"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py.Python, "-c", pythonInterop)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+stubs+string(os.PathListSeparator)+app, "PYTHONDONTWRITEBYTECODE=1",
		"TARGET="+c.coord.Addr, "CA="+dev.App.CA, "CERT="+dev.App.Cert, "KEY="+dev.App.Key, "CLOSING="+itoa(closing))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, stderr.String())

	type refusal struct {
		Code     string            `json:"code"`
		Reason   string            `json:"reason"`
		Domain   string            `json:"domain"`
		Metadata map[string]string `json:"metadata"`
		Details  []string          `json:"details"`
	}
	var out struct {
		Started struct {
			ConsolidationID int64  `json:"consolidation_id"`
			Estado          string `json:"estado"`
			TotalChunks     int    `json:"total_chunks"`
			TotalEmployees  int    `json:"total_employees"`
		} `json:"started"`
		Watched struct {
			ChunksDone  []int  `json:"chunks_done"`
			FinalEstado string `json:"final_estado"`
			FinalStatus string `json:"final_status"`
		} `json:"watched"`
		Got struct {
			ConsolidationID       int64  `json:"consolidation_id"`
			Estado                string `json:"estado"`
			EmployeesConsolidated int    `json:"employees_consolidated"`
			RecordsCreated        int64  `json:"records_created"`
			RequestedBy           string `json:"requested_by"`
			Finished              bool   `json:"finished"`
		} `json:"got"`
		Latest  int64    `json:"latest"`
		Missing *refusal `json:"missing"`
		Again   *refusal `json:"again"`
	}
	t.Logf("what the Python client saw: %s", stdout)
	require.NoError(t, json.Unmarshal(stdout, &out), string(stdout))
	run := out.Started.ConsolidationID
	require.Positive(t, run)
	require.Equal(t, "consolidando_datos", out.Started.Estado)
	require.Equal(t, []int{3, 300}, []int{out.Started.TotalChunks, out.Started.TotalEmployees})

	// Watched to the end: chunks done only grow, up to all of them, and the last
	// message holds the ended run.
	w := out.Watched
	require.NotEmpty(t, w.ChunksDone)
	require.IsNonDecreasing(t, w.ChunksDone)
	require.Equal(t, 3, w.ChunksDone[len(w.ChunksDone)-1])
	require.Equal(t, "datos_consolidados", w.FinalEstado)
	require.Equal(t, "RUN_STATUS_SUCCEEDED", w.FinalStatus)

	// GetConsolidation, by run and by closing, agrees with grpc-go's reading, and
	// the run was started as the Python client's certificate identity.
	fromGo, err := c.client.GetConsolidation(context.Background(), runRef(run))
	require.NoError(t, err)
	require.Equal(t, run, out.Got.ConsolidationID)
	require.Equal(t, run, out.Latest)
	require.True(t, out.Got.Finished)
	require.Equal(t, "datos_consolidados", out.Got.Estado)
	require.Equal(t, 300, out.Got.EmployeesConsolidated)
	require.Equal(t, fromGo.GetConsolidation().GetRecordsCreated(), out.Got.RecordsCreated)
	require.Equal(t, launch.AppIdentity, out.Got.RequestedBy)

	// Refusals, read from the status details the way grpcio hands them over.
	require.Equal(t, &refusal{Code: "NOT_FOUND", Reason: "CLOSING_NOT_FOUND", Domain: "consolidation.v1",
		Metadata: map[string]string{"closing_id": itoa(closing + 1000)}, Details: []string{"ErrorInfo", "ResourceInfo"}},
		out.Missing)
	require.NotNil(t, out.Again)
	require.Equal(t, "FAILED_PRECONDITION", out.Again.Code)
	require.Equal(t, "ESTADO_MAY_NOT_START", out.Again.Reason)
	require.Equal(t, "consolidation.v1", out.Again.Domain)
	require.Equal(t, itoa(closing), out.Again.Metadata["closing_id"])
}

// pythonStubs generates the Python stubs of the service into a directory of the
// test's own, with Debian's protoc and grpc_python_plugin: consolidation/v1/
// (messages and gRPC stubs), google/api/ (its HTTP annotations) and google/rpc/
// (status and error details), which Debian ships no Python package of. protoc reads the descriptors this test
// binary was built with (the proto module's generated code, which make verify
// keeps equal to proto/, and genproto's google.rpc), so the stubs are the very
// contract the servers serve and need no .proto file outside the repository.
func pythonStubs(t *testing.T, py localdb.PythonGRPC) string {
	t.Helper()
	var set descriptorpb.FileDescriptorSet
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) { // dependencies first, as protoc wants them
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	generate := []protoreflect.FileDescriptor{consolidationv1.File_consolidation_v1_consolidation_proto,
		status.File_google_rpc_status_proto, errdetails.File_google_rpc_error_details_proto}
	for _, fd := range generate {
		add(fd)
	}
	// Every file but the well-known types, which python3-protobuf ships: the
	// service's proto imports google/api's HTTP annotations too.
	args := []string{}
	for _, f := range set.File {
		if !strings.HasPrefix(f.GetName(), "google/protobuf/") {
			args = append(args, f.GetName())
		}
	}
	b, err := proto.Marshal(&set)
	require.NoError(t, err)
	dir := t.TempDir()
	in := filepath.Join(dir, "descriptors.pb")
	require.NoError(t, os.WriteFile(in, b, 0o600))
	out := filepath.Join(dir, "stubs")
	require.NoError(t, os.Mkdir(out, 0o700))
	cmd := exec.Command(py.Protoc, append([]string{"--descriptor_set_in=" + in, "--python_out=" + out,
		"--plugin=protoc-gen-grpc_python=" + py.Plugin, "--grpc_python_out=" + out}, args...)...)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, string(msg))
	return out
}
