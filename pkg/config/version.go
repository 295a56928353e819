package config

// Version is the version of the build, stamped by the image build
// (deploy/docker/Dockerfile) with
//
//	go build -ldflags "-X github.com/nominacl/consolidation/pkg/config.Version=v0.12.0"
//
// and carried by every log line (Logger), so a log says which release wrote it.
// A build that does not stamp it says "(devel)".
var Version = "(devel)"
