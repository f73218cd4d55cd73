"""Swagger UI at /swagger/index.html, from the files the `swagger-ui-py` package ships (Swagger UI
5, which reads OpenAPI 3.1), so the page works without reaching any other host."""

import functools
import importlib.util
from pathlib import Path

from tradsys.daemon.http import Route

FILES = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript",
         "index.css": "text/css", "favicon-32x32.png": "image/png", "favicon-16x16.png": "image/png"}
INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>TradSys REST API</title>
  <link rel="stylesheet" type="text/css" href="swagger-ui.css">
  <link rel="stylesheet" type="text/css" href="index.css">
  <link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js" charset="UTF-8"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
    });
  </script>
</body>
</html>
"""


def static_dir() -> Path | None:
    """Where the package keeps Swagger UI's files, found without importing it (its handlers import
    web frameworks the daemon does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in FILES) else None


def routes() -> dict[str, Route]:
    """The page and its files by path; only the page, saying what is missing, without the package."""
    folder = static_dir()
    if folder is None:
        missing = (404, "text/plain; charset=utf-8", b"Swagger UI is not installed: pip install swagger-ui-py\n")
        return {"/swagger/index.html": lambda _request: missing}
    table: dict[str, Route] = {"/swagger/index.html": lambda _request: (200, "text/html; charset=utf-8", INDEX.encode())}
    for name, content_type in FILES.items():
        table[f"/swagger/{name}"] = functools.partial(_file, folder / name, content_type)
    return table


@functools.cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def _file(path: Path, content_type: str, _request: object) -> tuple[int, str, bytes]:
    return 200, content_type, _read(path)
