"""Generated protobuf/gRPC modules for the tradsys.v1 API.

The sources are proto/*.proto at the repository root. The modules here
(``common_pb2``, ``orders_pb2``, ``orders_pb2_grpc``, ``marketdata_pb2``, ...)
are produced at install time by setup.py's build_py (grpcio-tools) and are
not committed: after editing a .proto, reinstall (``pip install -e .`` or
``make test``) to regenerate them.

Import them explicitly, e.g. ``from tradsys.proto import orders_pb2, orders_pb2_grpc``.
"""

#: Modules generated from proto/, one per .proto file (plus a ``_grpc`` sibling each).
PROTO_MODULES = ("common", "orders", "marketdata", "risk", "strategy", "ws", "alerts")
