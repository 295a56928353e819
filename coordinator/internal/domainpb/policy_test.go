package domainpb_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nominacl/consolidation/coordinator/internal/domainpb"
	"github.com/nominacl/consolidation/pkg/domain"
	consolidationv1 "github.com/nominacl/consolidation/proto/consolidation/v1"
)

func TestPolicyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy domain.Policy
		enum   consolidationv1.ChunkPolicy
	}{
		{"", consolidationv1.ChunkPolicy_CHUNK_POLICY_UNSPECIFIED},
		{domain.PolicySeed, consolidationv1.ChunkPolicy_CHUNK_POLICY_SEED},
		{domain.PolicyCostWeighted, consolidationv1.ChunkPolicy_CHUNK_POLICY_COST_WEIGHTED},
	} {
		require.Equal(t, tc.enum, domainpb.PolicyToProto(tc.policy), "policy %q", tc.policy)
		got, ok := domainpb.PolicyFromProto(tc.enum)
		require.True(t, ok, "enum %s", tc.enum)
		require.Equal(t, tc.policy, got, "enum %s", tc.enum)
	}
}

func TestEveryPolicyEnumIsMapped(t *testing.T) {
	t.Parallel()
	for v, name := range consolidationv1.ChunkPolicy_name {
		_, ok := domainpb.PolicyFromProto(consolidationv1.ChunkPolicy(v))
		require.True(t, ok, "%s has no policy", name)
	}
}

func TestUnknownPolicies(t *testing.T) {
	t.Parallel()
	require.Equal(t, consolidationv1.ChunkPolicy_CHUNK_POLICY_UNSPECIFIED, domainpb.PolicyToProto("fastest"))
	_, ok := domainpb.PolicyFromProto(consolidationv1.ChunkPolicy(99))
	require.False(t, ok)
}
