"""A real HTTP server on 127.0.0.1 for download tests: the standard library's ThreadingHTTPServer with a
handler that serves real files honestly, without Content-Length, or chunked."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port) serving ``handler`` while the ``with`` block runs;
    subclasses build their handler and call ``_listen``."""

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class Server(LoopbackHTTPServer):
    """``files`` (URL path -> bytes) served by ThreadingHTTPServer; ``mode[path]`` is how: "honest"
    (Content-Length), "no_length" (HTTP/1.0, body delimited by closing) or "chunked" (no length)."""

    def __init__(self, files: dict[str, bytes], mode: dict[str, str] | None = None):
        self.files, self.mode, self.hits = files, mode or {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                server.hits.append(path)
                if path not in server.files:
                    self.send_error(404)
                    return
                body, how = server.files[path], server.mode.get(path, "honest")
                self.send_response(200)
                if how == "honest":
                    self.send_header("Content-Length", str(len(body)))
                elif how == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.close_connection = True
                self.end_headers()
                try:
                    for start in range(0, len(body), 64 << 10):
                        piece = body[start:start + (64 << 10)]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if how == "chunked" else piece)
                    if how == "chunked":
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a size cap does

        self._listen(Handler)
