import os

# Set before anything imports grpc. The daemon forks a child to write engine snapshots
# (`Store.snapshot_in_child`) that never touches gRPC, so gRPC's fork handlers have nothing to
# do there but log that they skip.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
