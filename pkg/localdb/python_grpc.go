package localdb

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// PythonGRPC is Debian's gRPC for Python: protoc with grpc_python_plugin to
// generate stubs, and a python3 with grpcio and protobuf to run them. It is how
// the tests check the service against a gRPC implementation that is not grpc-go.
type PythonGRPC struct {
	Protoc string // protoc (protobuf-compiler)
	Plugin string // grpc_python_plugin (protobuf-compiler-grpc)
	Python string // a python3 that imports grpc and google.protobuf
}

var pythonGRPC = sync.OnceValues(findPythonGRPC)

// FindPythonGRPC finds protoc, grpc_python_plugin and a python3 with grpcio and
// protobuf, installing Debian's protobuf-compiler, protobuf-compiler-grpc,
// python3-grpcio and python3-protobuf with apt-get when one is missing and we
// are root on Debian.
func FindPythonGRPC() (PythonGRPC, error) { return pythonGRPC() }

func findPythonGRPC() (PythonGRPC, error) {
	find := func() (PythonGRPC, bool) {
		p := PythonGRPC{Protoc: debianTool("protoc"), Plugin: debianTool("grpc_python_plugin"),
			Python: pythonWith("import grpc, google.protobuf")}
		return p, p.Protoc != "" && p.Plugin != "" && p.Python != ""
	}
	if p, ok := find(); ok {
		return p, nil
	}
	found := func() bool { _, ok := find(); return ok }
	if err := aptInstall(found, "protobuf-compiler", "protobuf-compiler-grpc", "python3-grpcio", "python3-protobuf"); err != nil {
		return PythonGRPC{}, fmt.Errorf("protoc, grpc_python_plugin or python3 with grpcio not found: %w", err)
	}
	p, ok := find()
	if !ok {
		return PythonGRPC{}, errors.New("protobuf-compiler-grpc and python3-grpcio were installed but protoc, grpc_python_plugin or python3's grpc is still missing")
	}
	return p, nil
}

// debianTool is /usr/bin/name when it is there (Debian's, which matches Debian's
// Python packages), else name on PATH, else "".
func debianTool(name string) string {
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}

// pythonWith is the first python3 that runs imports: Debian's own first, since a
// python3 earlier on PATH (pyenv, a virtualenv) does not see the packages apt-get
// installs.
func pythonWith(imports string) string {
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		if exec.Command(py, "-c", imports).Run() == nil {
			return py
		}
	}
	return ""
}
