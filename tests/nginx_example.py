"""The README's nginx example, run for real: Debian's nginx on loopback in front of a live app.

``readme_block()`` reads the block between the ``retreat-nginx-example`` markers of README.md;
``render()`` puts loopback ports, a throwaway certificate and temporary paths in (every replacement
must match, so a README edit the harness does not understand fails loudly instead of testing
something else); ``Nginx`` starts it as the current user (``daemon off``, pid, logs and temp files
under a temporary directory) and stops it. ``serve_app()`` serves a Flask app on a loopback port in
a thread (werkzeug), the upstream nginx proxies to.
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN, END = "# >>> retreat-nginx-example", "# <<< retreat-nginx-example"
HOST = "localhost"  # the certificate's name; nginx listens on 127.0.0.1 only


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def require_nginx() -> str:
    """The nginx binary; skipped without it, unless CI or REQUIRE_BROWSER asks for the real thing."""
    binary = nginx_binary()
    if binary:
        return binary
    if os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI"):
        pytest.fail("nginx is required here (REQUIRE_BROWSER/CI): apt-get install nginx-light")
    pytest.skip("nginx is not installed (apt-get install nginx-light); set REQUIRE_BROWSER=1 to make this a failure")


def readme_block() -> str:
    text = README.read_text()
    match = re.search(rf"^{re.escape(BEGIN)}.*?$(.*?)^{re.escape(END)}$", text, re.S | re.M)
    assert match, f"README.md has no nginx block between {BEGIN!r} and {END!r}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sub(pattern: str, repl, text: str, *, flags=0, at_least: int = 1) -> str:
    out, n = re.subn(pattern, repl, text, flags=flags)
    assert n >= at_least, f"the README's nginx block no longer has {pattern!r} (the harness substitutes it)"
    return out


@dataclass
class Rendered:
    conf: str
    access_log: Path


def _servers(lines: str, upstreams: list[str]) -> str:
    """The README's ``server ADDRESS params;`` lines with our addresses (``"ADDRESS [extra params]"``),
    keeping each line's parameters (max_fails, fail_timeout): the last line's for any extra machine."""
    params = [m.group(1) for m in re.finditer(r"server \S+([^;\n]*);", lines)]
    out = []
    for i, upstream in enumerate(upstreams):
        address, _, extra = upstream.partition(" ")
        out.append(f"    server {address}{params[min(i, len(params) - 1)]}{' ' + extra if extra else ''};\n")
    return "".join(out)


def render(block: str, workdir: Path, *, http_port: int, https_port: int, upstreams: list[str], cert: Path,
           key: Path, static_dir: Path = ROOT / "static") -> Rendered:
    """The README block with loopback ports, a throwaway certificate and paths under ``workdir``,
    wrapped in the main context nginx needs to run unprivileged."""
    access_log = workdir / "access.log"
    text = _sub(r"^(\s*upstream retreat \{\n(?:\s*#[^\n]*\n)*)((?:\s*server [^\n]+;\n)+)",
                lambda m: m.group(1) + _servers(m.group(2), upstreams), block, flags=re.M)
    text = _sub(r"listen 443\b", f"listen 127.0.0.1:{https_port}", text)
    text = _sub(r"listen 80\b", f"listen 127.0.0.1:{http_port}", text)
    text = _sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = _sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    text = _sub(r"access_log \S+ retreat;", f"access_log {access_log} retreat;", text)
    text = _sub(r"alias /srv/retreat/static/;", f"alias {static_dir}/;", text)
    text = _sub(r"server_name retreats\.example\.org;", f"server_name {HOST};", text)
    temp = "\n".join(f"    {name}_temp_path {workdir / name};" for name in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = (f"user {getpass.getuser()};\nworker_processes 1;\nerror_log {workdir / 'error.log'} info;\n"
            f"events {{ worker_connections 128; }}\nhttp {{\n    include /etc/nginx/mime.types;\n"
            f"    access_log off;\n{temp}\n{text}\n}}\n")
    return Rendered(conf, access_log)


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Nginx:
    """One nginx running ``conf`` from ``workdir`` until ``stop()``."""

    binary: str
    workdir: Path
    rendered: Rendered
    https_port: int
    http_port: int
    cert: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def start(self) -> Nginx:
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.rendered.conf)
        pid = self.workdir / "nginx.pid"
        args = [self.binary, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log"),
                "-g", f"daemon off; pid {pid};"]
        check = subprocess.run([*args[:-2], "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the README's block:\n{check.stderr}\n{self.rendered.conf}"
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read()}\n{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen on {self.https_port}:\n{self.error_log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of the master and its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text() if path.exists() else ""

    def access_log(self) -> str:
        """What nginx logged so far (it writes each line when the request ends)."""
        path = self.rendered.access_log
        return path.read_text() if path.exists() else ""


def start_nginx(workdir: Path, upstreams: list[str], *, block: str | None = None) -> Nginx:
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(workdir)
    https_port, http_port = free_port(), free_port()
    rendered = render(block if block is not None else readme_block(), workdir, http_port=http_port,
                      https_port=https_port, upstreams=upstreams, cert=cert, key=key)
    return Nginx(require_nginx(), workdir, rendered, https_port, http_port, cert).start()


class AppServer:
    """A Flask app served by werkzeug on a loopback port, in a thread."""

    def __init__(self, app, port: int | None = None):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", port or 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="app-server", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
