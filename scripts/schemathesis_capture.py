"""A plain-HTTP forward proxy that keeps the changesets a node pushes (for scripts/schemathesis).

    python scripts/schemathesis_capture.py OUT_DIR PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening), forwards every request
unchanged to the absolute URL the client asked for, and writes the changeset of every
POST /v1/exchange body that carries one (the envelope opened, gzip undone) to OUT_DIR/N.bin.
`ferry sync --proxy http://127.0.0.1:PORT` through it gives schemathesis real changesets of the
enrolled node, which the hub decodes, validates and applies instead of refusing at the first
check.
"""

from __future__ import annotations

import gzip
import http.client
import itertools
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out_dir, port_file = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
counter = itertools.count(1)


def changeset_of(envelope: bytes) -> bytes:
    """The changeset after an exchange envelope's header (protocol/HTTP.md, "The envelope")."""
    if envelope[:5] != b"FRYX\x01":
        return b""
    length, shift, i = 0, 0, 5
    while i < len(envelope):
        byte = envelope[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            break
    return envelope[i + length :]


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(self.path)
        path = url.path + (f"?{url.query}" if url.query else "")
        if self.command == "POST" and url.path == "/v1/exchange":
            plain = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
            changeset = changeset_of(plain)
            if changeset:
                with open(os.path.join(out_dir, f"{next(counter)}.bin"), "wb") as f:
                    f.write(changeset)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        upstream.request(self.command, path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = forward


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(port_file + ".tmp", "w", encoding="utf-8") as f:
    f.write(str(server.server_address[1]))
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
