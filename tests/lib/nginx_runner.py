"""nginx with the kroute module, started from the shipped nginx-conf/nginx.conf, for any test or tool.

One implementation, not two: this loads the integration suite's helpers (tests/integration/conftest.py)
under a private module name, so tests/e2e, `make run` and bench/ start nginx exactly the way the
integration tests do (same config templating, same stop logic) without importing a second `conftest`.
"""
import importlib.util
import sys
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_NAME = "kroute_integration_helpers"


def _load():
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _INTEGRATION)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_helpers = _load()

Nginx = _helpers.Nginx                      # Nginx(table_dir).start() / .stop() / .cleanup() / .get(host, path)
render_config = _helpers.render_config      # render_config(workdir, table_dir, port, status_port) -> nginx.conf text
readable_tempdir = _helpers.readable_tempdir  # a temp dir nginx workers (www-data) can read
free_port = _helpers.free_port
wait_for_port = _helpers.wait_for_port
NGINX = _helpers.NGINX
MODULE = _helpers.MODULE
WORKERS = _helpers.WORKERS
ECHO_SERVER = _helpers.ECHO_SERVER
