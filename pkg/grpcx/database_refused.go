package grpcx

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReasonDatabaseRefused is the google.rpc.ErrorInfo reason of a ProcessChunk
// answer saying the database refused the chunk for a reason that is not its
// data's (a privilege not granted, a missing column or table): every chunk will
// meet it, so the run ends at once instead of splitting chunks down to every
// employee. Its metadata carries the SQLSTATE.
const ReasonDatabaseRefused = "DATABASE_REFUSED"

// WorkerErrorDomain is the ErrorInfo domain of the workers' answers.
const WorkerErrorDomain = "worker.consolidation.v1"

// DatabaseRefused is the FAILED_PRECONDITION status of a chunk the database
// refused for a reason not its data's; msg must name ids and the SQLSTATE only.
func DatabaseRefused(msg, sqlstate string) error {
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonDatabaseRefused, Domain: WorkerErrorDomain, Metadata: map[string]string{"sqlstate": sqlstate}})
	if err != nil { // only a detail that cannot be marshalled; this one can
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

// IsDatabaseRefused reports whether st is a DatabaseRefused answer.
func IsDatabaseRefused(st *status.Status) bool {
	if st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == ReasonDatabaseRefused &&
			info.GetDomain() == WorkerErrorDomain {
			return true
		}
	}
	return false
}
