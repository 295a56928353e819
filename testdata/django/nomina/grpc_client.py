"""A small client of the consolidation service's gRPC API, for the payroll application.

It needs grpcio and protobuf (Debian: python3-grpcio, python3-protobuf) and the stubs generated
with protoc and grpc_python_plugin (Debian: protobuf-compiler, protobuf-compiler-grpc) on sys.path:

    consolidation/v1/consolidation_pb2.py, consolidation/v1/consolidation_pb2_grpc.py
    google/rpc/status_pb2.py, google/rpc/error_details_pb2.py

(README.md of this directory says how). Calls go over mTLS with the caller's certificate
(spiffe://payroll/app in the deployment). A refused call raises ConsolidationError, whose reason
is the ErrorInfo reason the service sends (docs/rules.md): a program switches on it, never on the
message.
"""
import grpc

from consolidation.v1 import consolidation_pb2 as pb
from consolidation.v1 import consolidation_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2, status_pb2

# The trailer in which a gRPC server sends the google.rpc.Status with the error details.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ConsolidationError(Exception):
    """A call the service refused or could not answer.

    code is the grpc.StatusCode; message the status message, for people; reason, domain and
    metadata the google.rpc.ErrorInfo ("" and {} when the status carries none); details every
    detail message of the status, unpacked when it is one of google.rpc's error details.
    """

    def __init__(self, code, message, reason="", domain="", metadata=None, details=()):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.details = list(details)

    @classmethod
    def from_rpc_error(cls, err):
        """The ConsolidationError of a grpc.RpcError, its details read from the trailers."""
        details, info = [], None
        for key, value in err.trailing_metadata() or ():
            if key != STATUS_DETAILS_KEY:
                continue
            status = status_pb2.Status.FromString(value)
            for any_ in status.details:
                msg = _unpack(any_)
                details.append(msg)
                if isinstance(msg, error_details_pb2.ErrorInfo) and info is None:
                    info = msg
        if info is None:
            return cls(err.code(), err.details() or "", details=details)
        return cls(err.code(), err.details() or "", info.reason, info.domain, info.metadata, details)


# The google.rpc error details a status may carry, by full name.
_DETAIL_TYPES = {
    t.DESCRIPTOR.full_name: t
    for t in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
    )
}


def _unpack(any_):
    t = _DETAIL_TYPES.get(any_.TypeName())
    if t is None:
        return any_
    msg = t()
    any_.Unpack(msg)
    return msg


def _ref(consolidation_id, closing_id):
    if (consolidation_id is None) == (closing_id is None):
        raise ValueError("give consolidation_id or closing_id")
    if consolidation_id is not None:
        return {"consolidation_id": consolidation_id}
    return {"closing_id": closing_id}


class ConsolidationClient:
    """ConsolidationService over mTLS.

    target is host:port; ca_file, cert_file and key_file the PEM files of the CA that signed the
    coordinator's certificate and of the caller's own certificate and key. timeout bounds each
    unary call, in seconds (a watch lasts as long as the run).
    """

    def __init__(self, target, ca_file, cert_file, key_file, timeout=30.0):
        with open(ca_file, "rb") as f:
            ca = f.read()
        with open(cert_file, "rb") as f:
            cert = f.read()
        with open(key_file, "rb") as f:
            key = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        self._channel = grpc.secure_channel(target, creds)
        self._stub = pb_grpc.ConsolidationServiceStub(self._channel)
        self._timeout = timeout

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def consolidate(self, closing_id, **options):
        """Starts a run of the closing (options: force, chunk_size, request_id, validate_only,
        mode, chunk_policy) and returns the ConsolidateResponse."""
        req = pb.ConsolidateRequest(closing_id=closing_id, **options)
        return self._call(self._stub.Consolidate, req)

    def get(self, consolidation_id=None, closing_id=None):
        """The Consolidation: a run by id, or the closing's latest run."""
        req = pb.GetConsolidationRequest(**_ref(consolidation_id, closing_id))
        return self._call(self._stub.GetConsolidation, req).consolidation

    def cancel(self, consolidation_id=None, closing_id=None):
        """Asks a run to stop; returns its Consolidation."""
        req = pb.CancelConsolidationRequest(**_ref(consolidation_id, closing_id))
        return self._call(self._stub.CancelConsolidation, req).consolidation

    def watch(self, consolidation_id=None, closing_id=None):
        """Yields the run's WatchConsolidationResponse messages until it ends: progress, then a
        last one whose final is the ended Consolidation."""
        req = pb.WatchConsolidationRequest(**_ref(consolidation_id, closing_id))
        try:
            yield from self._stub.WatchConsolidation(req)
        except grpc.RpcError as err:
            raise ConsolidationError.from_rpc_error(err) from None

    def _call(self, method, req):
        try:
            return method(req, timeout=self._timeout)
        except grpc.RpcError as err:
            raise ConsolidationError.from_rpc_error(err) from None
