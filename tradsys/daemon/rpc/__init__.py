"""gRPC: thin servicers that translate protobuf messages to engine commands and records back."""
