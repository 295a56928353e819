package launch

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/nominacl/consolidation/pkg/devca"
	"github.com/nominacl/consolidation/pkg/grpcx"
)

// The identities of the services and their callers (docs/security-model.md), as the
// certificates of deploy/k8s name them in URI SANs.
const (
	CoordinatorIdentity = "spiffe://payroll/coordinator"
	WorkerIdentity      = "spiffe://payroll/worker"
	AppIdentity         = "spiffe://payroll/app"
	OpsIdentity         = "spiffe://payroll/ops"
)

// CoordinatorPolicy is the coordinator's AUTHZ_POLICY_FILE of a local cluster:
// the payroll application and operators may call ConsolidationService and
// reflection.
const CoordinatorPolicy = `rules:
  - identities: ["` + AppIdentity + `", "` + OpsIdentity + `"]
    methods:
      - consolidation.v1.ConsolidationService/*
      - grpc.reflection.v1.ServerReflection/*
      - grpc.reflection.v1alpha.ServerReflection/*
`

// WorkerPolicy is a worker's AUTHZ_POLICY_FILE of a local cluster: only the
// coordinator may call ProcessChunk; operators may list the services.
const WorkerPolicy = `rules:
  - identities: ["` + CoordinatorIdentity + `"]
    methods: ["consolidation.v1.WorkerService/ProcessChunk"]
  - identities: ["` + OpsIdentity + `"]
    methods:
      - grpc.reflection.v1.ServerReflection/*
      - grpc.reflection.v1alpha.ServerReflection/*
`

// DevTLS is a throwaway CA and the certificates and policies of a local cluster
// on mTLS, written under Dir: coordinator/, worker/, app/ and ops/ each hold
// tls.crt, tls.key and ca.crt (laid out as a mounted Secret), and
// coordinator-policy.yaml and worker-policy.yaml the policies. Every certificate
// also names localhost and 127.0.0.1, the addresses the processes are dialled
// at here.
type DevTLS struct {
	Dir string
	CA  *devca.CA
	// Coordinator, Worker: the services' files; App, Ops: callers'.
	Coordinator, Worker, App, Ops grpcx.TLSFiles
	CoordinatorPolicy             string // file
	WorkerPolicy                  string // file
}

// NewDevTLS makes the CA and writes the certificates and policies into dir.
func NewDevTLS(dir string) (*DevTLS, error) {
	ca, err := devca.NewCA("consolidation dev CA")
	if err != nil {
		return nil, err
	}
	d := &DevTLS{Dir: dir, CA: ca}
	for _, c := range []struct {
		files    *grpcx.TLSFiles
		name, id string
	}{
		{&d.Coordinator, "coordinator", CoordinatorIdentity}, {&d.Worker, "worker", WorkerIdentity},
		{&d.App, "app", AppIdentity}, {&d.Ops, "ops", OpsIdentity},
	} {
		if *c.files, _, err = d.Issue(c.name, c.id); err != nil {
			return nil, err
		}
	}
	d.CoordinatorPolicy = filepath.Join(dir, "coordinator-policy.yaml")
	d.WorkerPolicy = filepath.Join(dir, "worker-policy.yaml")
	if err := os.WriteFile(d.CoordinatorPolicy, []byte(CoordinatorPolicy), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.WorkerPolicy, []byte(WorkerPolicy), 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// Issue writes a new certificate for identity, signed by the CA, into Dir/name
// (replacing, atomically, one written there before: a rotation) and returns its
// files and what was issued.
func (d *DevTLS) Issue(name, identity string) (grpcx.TLSFiles, devca.Issued, error) {
	issued, err := d.CA.Issue(devca.Leaf{CommonName: name, URIs: []string{identity},
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})
	if err != nil {
		return grpcx.TLSFiles{}, devca.Issued{}, err
	}
	dir := filepath.Join(d.Dir, name)
	if err := d.CA.WriteBundle(dir, issued); err != nil {
		return grpcx.TLSFiles{}, devca.Issued{}, fmt.Errorf("writing the certificate of %s: %w", name, err)
	}
	cert, key, ca := devca.Paths(dir)
	return grpcx.TLSFiles{Cert: cert, Key: key, CA: ca}, issued, nil
}

// Env is the environment that gives a process files and policy.
func Env(files grpcx.TLSFiles, policy string) []string {
	env := []string{grpcx.EnvTLSCert + "=" + files.Cert, grpcx.EnvTLSKey + "=" + files.Key, grpcx.EnvTLSCA + "=" + files.CA}
	if policy != "" {
		env = append(env, grpcx.EnvAuthzPolicy+"="+policy)
	}
	return env
}
