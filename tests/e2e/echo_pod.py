"""The echo backend of tests/integration/echo_server.py, answering every method the e2e tests send.

The integration echo server has no PATCH or OPTIONS handler (http.server answers 501); the Ingress
conformance scenarios send PATCH. This wrapper adds them and runs that server unchanged otherwise:
NAME=HOST:PORT arguments, "ready" on stdout, runs until stdin closes.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import echo_server  # noqa: E402

_make_handler = echo_server.make_handler


def make_handler(name):
    handler = _make_handler(name)
    handler.do_PATCH = handler.do_OPTIONS = handler.reply
    return handler


echo_server.make_handler = make_handler

if __name__ == "__main__":
    echo_server.main()
