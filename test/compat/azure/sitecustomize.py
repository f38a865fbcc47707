"""Test-only name resolution for the Azure SDK tests (loaded because this folder is on PYTHONPATH).

Names under CUSTODY_TEST_RESOLVE_SUFFIX (e.g. ``.custody.test``) resolve to 127.0.0.1, the way a
DNS record or /etc/hosts entry would in a real deployment; such names do not resolve on the test
machines. TLS still verifies the certificate against the name the client used.
"""

import os
import socket

_SUFFIX = os.environ.get("CUSTODY_TEST_RESOLVE_SUFFIX", "").lower()

if _SUFFIX:
    _original_getaddrinfo = socket.getaddrinfo

    def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 (socket's names)
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(_SUFFIX):
            host = "127.0.0.1"
        return _original_getaddrinfo(host, port, family, type, proto, flags)

    socket.getaddrinfo = _getaddrinfo
