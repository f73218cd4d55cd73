"""Build hook: generate the gRPC/protobuf Python modules from proto/*.proto.

Metadata lives in pyproject.toml; this file only customises ``build_py`` so
that every way of installing the project runs protoc (via grpcio-tools, a
[build-system] requirement) and the generated code is never committed:

* ``pip install .`` / wheels: generated into the build directory next to the
  copied sources, so they end up in the wheel.
* ``pip install -e .`` (PEP 660): setuptools sets ``editable_mode`` and the
  editable install imports straight from the source tree, so the modules are
  generated in place into tradsys/proto/ (gitignored).

The .proto files import each other as "tradsys/proto/<name>.proto"; the
``-Itradsys/proto=<proto dir>`` mapping makes protoc see proto/ under that
virtual path, so generated code imports ``from tradsys.proto import ...``.

The engine's hot modules are also compiled to C extensions with mypyc (a
[build-system] requirement): the same typed Python source, about three times
faster per order, which the engine's throughput target needs. An editable
install builds them in place next to their sources; after editing one of those
sources, reinstall (``make test`` and ``make run`` do it), or the extension
keeps running the old code. ``TRADSYS_PURE=1`` at install time skips the
compilation and runs the engine as plain Python.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
PROTO_DIR = ROOT / "proto"
PROTO_PACKAGE = "tradsys/proto"  # import prefix in .proto files == package path
GENERATED_GLOBS = ("*_pb2.py", "*_pb2_grpc.py", "*_pb2.pyi", "*_pb2_grpc.pyi")
COMPILED = (
    "account", "book", "breaker", "clock", "commands", "errors", "events", "instrument", "limits", "order", "position",
    "recent", "risk", "settlement", "stops", "venue",
)
"""tradsys/engine modules compiled with mypyc: the path of every order, and what it touches."""


def _remove_generated(package_dir: Path) -> None:
    """Drop previously generated modules so a deleted .proto leaves nothing behind."""
    for pattern in GENERATED_GLOBS:
        for path in package_dir.glob(pattern):
            path.unlink()


def generate_protos(out_dir: Path) -> list[Path]:
    """Run protoc on every proto/*.proto, writing <out_dir>/tradsys/proto/*_pb2*.py(i)."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # only without build isolation and without grpcio-tools
        raise SetupError(
            "grpcio-tools is needed to generate tradsys/proto from proto/*.proto; "
            "install it or build with build isolation"
        ) from exc

    protos = sorted(PROTO_DIR.glob("*.proto"))
    if not protos:
        raise SetupError(f"no .proto files found in {PROTO_DIR}")

    package_dir = out_dir / PROTO_PACKAGE
    package_dir.mkdir(parents=True, exist_ok=True)
    _remove_generated(package_dir)

    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_PACKAGE}={PROTO_DIR}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SetupError("protoc failed on proto/*.proto (see the messages above)")
    return sorted(p for pattern in GENERATED_GLOBS for p in package_dir.glob(pattern))


class build_py(_build_py):
    """build_py that also compiles the .proto files."""

    def run(self) -> None:
        if self.editable_mode:
            # Editable installs import from the source tree: generate there,
            # before build_py lists modules (strict mode links what it finds).
            generate_protos(ROOT)
            super().run()
            return
        super().run()
        # Generate straight into the build tree; this also replaces any stale
        # copies build_py took from an in-place (editable) generation.
        self._generated = generate_protos(Path(self.build_lib))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        extra = [str(p) for p in getattr(self, "_generated", []) if str(p) not in outputs]
        return outputs + extra


def compiled_engine() -> list:
    if os.environ.get("TRADSYS_PURE"):
        return []
    from mypyc.build import mypycify

    return mypycify([f"tradsys/engine/{name}.py" for name in COMPILED], group_name="tradsys_engine")


setup(cmdclass={"build_py": build_py}, ext_modules=compiled_engine())
