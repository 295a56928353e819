// Package domainpb converts the service's typed values (pkg/domain) to and from
// their protobuf enums, once, for the gRPC server and its clients (cierrectl, the
// benchmark).
package domainpb

import (
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

var policies = map[domain.Policy]consolidationv1.ChunkPolicy{
	domain.PolicySeed:         consolidationv1.ChunkPolicy_CHUNK_POLICY_SEED,
	domain.PolicyCostWeighted: consolidationv1.ChunkPolicy_CHUNK_POLICY_COST_WEIGHTED,
}

// PolicyToProto is p's enum; "" (the service's default) and a policy not known
// are CHUNK_POLICY_UNSPECIFIED.
func PolicyToProto(p domain.Policy) consolidationv1.ChunkPolicy {
	return policies[p]
}

// PolicyFromProto is the policy of an enum; CHUNK_POLICY_UNSPECIFIED is "" (the
// service's default). ok is false for a value the enum does not define.
func PolicyFromProto(c consolidationv1.ChunkPolicy) (p domain.Policy, ok bool) {
	if c == consolidationv1.ChunkPolicy_CHUNK_POLICY_UNSPECIFIED {
		return "", true
	}
	for p, pc := range policies {
		if pc == c {
			return p, true
		}
	}
	return "", false
}
