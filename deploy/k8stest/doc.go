// Package k8stest holds the test that renders the Kubernetes deployment in
// deploy/k8s with kubectl kustomize and checks every object it produces. It has no
// code of its own; see manifests_test.go.
package k8stest
