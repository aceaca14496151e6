"""A stand-in for the internet on 127.0.0.1: an HTTP(S) proxy that serves chosen files.

Point `HTTPS_PROXY`/`HTTP_PROXY` at it (requests, which tensorflow-datasets
downloads with, honours them: tensorflow_datasets/core/download/downloader.py,
`_sync_download`'s docstring). For each `CONNECT host:443` it either refuses
with 403 (`refuse_tls=True`: the network is closed at the proxy) or answers 200
and speaks TLS itself, with a certificate for that host signed by a throw-away CA
made for the test (trust it through `REQUESTS_CA_BUNDLE`, see `env()`); then it
answers each request with the file registered for that URL, or 404. Plain http
requests get the same answers. Every URL asked for is recorded in `requests`.

Nothing here reaches a real host: the proxy never opens a connection of its own.
"""

from __future__ import annotations

import http.server
import shutil
import socketserver
import ssl
import subprocess
import threading
import urllib.parse
from pathlib import Path


def make_ca_and_cert(folder: Path, hosts) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for `hosts`, made with openssl."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is needed to make the test certificates")
    folder.mkdir(parents=True, exist_ok=True)
    cnf = folder / "openssl.cnf"
    san = ",".join(f"DNS:{h}" for h in sorted(set(hosts)))
    cnf.write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n"
        "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier = hash\n"
        "[leaf]\nbasicConstraints = critical,CA:FALSE\n"
        "keyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n"
        f"subjectAltName = {san}\n")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "2", "-subj", "/CN=kzoo test CA", "-config", str(cnf), "-extensions", "ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=kzoo test server", "-config", str(cnf))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-set_serial", "1",
            "-out", str(cert), "-days", "2", "-extfile", str(cnf), "-extensions", "leaf")
    return ca, cert, key


class FakeInternet:
    """The proxy server; use as a context manager (it serves on a daemon thread)."""

    def __init__(self, folder: Path, hosts=(), *, refuse_tls: bool = False):
        self.files: dict[str, tuple[bytes, str]] = {}  # URL -> (body, file name)
        self.requests: list[str] = []  # every URL asked for, in order (CONNECT: "https://host:port")
        self.refuse_tls = refuse_tls
        self.ca = None
        self._tls = None
        if not refuse_tls:
            self.ca, cert, key = make_ca_and_cert(Path(folder), hosts)
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(cert, key)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.internet = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, url: str, body: bytes, filename: str | None = None, *, attachment: bool = True):
        """Answer `url` with `body`, named `filename` (default: the URL's last path part)
        in a Content-Disposition header, as Google Drive names its downloads; with
        `attachment=False`, without that header (a web page)."""
        name = filename or Path(urllib.parse.urlparse(url).path).name or "download"
        self.files[url] = (body, name if attachment else None)

    def env(self) -> dict:
        """Environment variables that send requests' traffic through this proxy."""
        env = {"HTTPS_PROXY": self.url, "HTTP_PROXY": self.url, "https_proxy": self.url,
               "http_proxy": self.url, "NO_PROXY": "", "no_proxy": ""}
        if self.ca is not None:
            env["REQUESTS_CA_BUNDLE"] = str(self.ca)
        return env

    def __enter__(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # a stuck client never holds a thread for ever
    tunnel_host = None  # "host:port" inside a CONNECT tunnel

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        internet = self.server.internet
        internet.requests.append(f"https://{self.path}")
        if internet.refuse_tls:
            self._answer(403, b"kzoo test proxy: the network is closed\n")
            self.close_connection = True
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        tls = internet._tls.wrap_socket(self.connection, server_side=True)
        self.connection = tls
        self.rfile = tls.makefile("rb")
        self.wfile = tls.makefile("wb")
        self.tunnel_host = self.path
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def do_GET(self):
        internet = self.server.internet
        if self.tunnel_host:
            host, _, port = self.tunnel_host.partition(":")
            netloc = host if port in ("", "443") else self.tunnel_host
            url = f"https://{netloc}{self.path}"
        else:
            url = self.path  # a proxy request carries the absolute URL
        internet.requests.append(url)
        if url not in internet.files:
            self._answer(404, b"not found\n")
            return
        body, name = internet.files[url]
        self._answer(200, body, {"Content-Disposition": f'attachment; filename="{name}"',
                                 "Content-Type": "application/octet-stream"} if name else
                     {"Content-Type": "text/html; charset=utf-8"})

    def _answer(self, status, body, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
