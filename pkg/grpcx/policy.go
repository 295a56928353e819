package grpcx

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Policy says which identities may call which methods (AUTHZ_POLICY_FILE,
// docs/security-model.md#authorization). The zero Policy allows nothing.
type Policy struct {
	rules []policyRule
}

type policyRule struct {
	Identities []string `yaml:"identities"`
	Methods    []string `yaml:"methods"`
}

type policyDoc struct {
	Rules []policyRule `yaml:"rules"`
}

// ParsePolicy reads a policy in its YAML shape:
//
//	rules:
//	  - identities: ["spiffe://payroll/app", "spiffe://payroll/ops"]
//	    methods: ["consolidation.v1.ConsolidationService/*"]
//
// Decoding is strict: an unknown key, a rule without identities or methods, or
// a method that is not "package.Service/Method" or "package.Service/*" is an
// error.
func ParsePolicy(data []byte) (Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc policyDoc
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	for i, r := range doc.Rules {
		if len(r.Identities) == 0 || len(r.Methods) == 0 {
			return Policy{}, fmt.Errorf("policy: rule %d needs identities and methods", i+1)
		}
		if slices.Contains(r.Identities, "") {
			return Policy{}, fmt.Errorf("policy: rule %d has an empty identity", i+1)
		}
		for _, m := range r.Methods {
			if err := checkMethodPattern(m); err != nil {
				return Policy{}, fmt.Errorf("policy: rule %d: %w", i+1, err)
			}
		}
	}
	return Policy{rules: doc.Rules}, nil
}

// checkMethodPattern accepts "package.Service/Method" and "package.Service/*":
// "*" only as the whole last segment.
func checkMethodPattern(m string) error {
	service, method, ok := strings.Cut(m, "/")
	switch {
	case !ok || service == "" || method == "" || strings.Contains(method, "/"):
		return fmt.Errorf("method %q: want package.Service/Method or package.Service/*", m)
	case strings.Contains(service, "*") || method != "*" && strings.Contains(method, "*"):
		return fmt.Errorf("method %q: \"*\" is allowed only as the whole last segment", m)
	}
	return nil
}

// Allows reports whether identity may call fullMethod ("/package.Service/Method",
// as grpc-go names it, or without the leading slash).
func (p Policy) Allows(identity, fullMethod string) bool {
	method := strings.TrimPrefix(fullMethod, "/")
	service, _, _ := strings.Cut(method, "/")
	for _, r := range p.rules {
		if !slices.Contains(r.Identities, identity) {
			continue
		}
		for _, m := range r.Methods {
			if m == method || m == service+"/*" {
				return true
			}
		}
	}
	return false
}
