package server

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/nominacl/consolidation/coordinator/internal/engine"
)

func TestErrorStatusCarriesTheDetails(t *testing.T) {
	t.Parallel()
	st := errorStatus(engine.InvalidArgument("chunk_size", "chunk_size %d is out of range", -1))
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, "chunk_size -1 is out of range", st.Message())
	details := st.Details()
	require.Len(t, details, 2)
	info := details[0].(*errdetails.ErrorInfo)
	require.Equal(t, engine.ReasonInvalidArgument, info.GetReason())
	require.Equal(t, engine.ErrorDomain, info.GetDomain())
	br := details[1].(*errdetails.BadRequest)
	require.Len(t, br.GetFieldViolations(), 1)
	require.Equal(t, "chunk_size", br.GetFieldViolations()[0].GetField())
	require.Equal(t, "chunk_size -1 is out of range", br.GetFieldViolations()[0].GetDescription())

	// An error with no details is its code and message only; an unknown kind is INTERNAL.
	st = errorStatus(&engine.Error{Kind: engine.KindInternal, Msg: "x"})
	require.Equal(t, codes.Internal, st.Code())
	require.Empty(t, st.Details())
}
