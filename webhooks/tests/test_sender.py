"""One attempt's bounds against real sockets on loopback: a receiver dripping its answer a byte
at a time is cut at the attempt's timeout; a huge answer is read only up to the limit; a host
that does not resolve is a network error (retried), a refused address is final."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from webhooks import sender


def serve_once(handle) -> tuple[str, threading.Event]:
    """A raw TCP server on loopback whose first connection `handle(conn)` serves; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def run() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            handle(conn)
        except OSError:
            pass
        finally:
            conn.close()
            listener.close()
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", done


def post(url: str, timeout_s: float = 1.0, allow_private: bool = True) -> sender.Answer:
    return sender.post(url, b"{}", {"Content-Type": "application/json"}, timeout_s=timeout_s,
                       max_answer_bytes=4096, allow_private=allow_private, max_url_length=2048)


def test_a_receiver_dripping_its_answer_is_cut_at_the_attempts_timeout():
    def drip(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):  # one header byte every 0.2 s: each read waits less than the timeout
            conn.sendall(b"X")
            time.sleep(0.2)

    url, done = serve_once(drip)
    started = time.monotonic()
    answer = post(url, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert answer.status is None and answer.error.startswith("timeout") and not answer.refused
    assert elapsed < 2.0, elapsed  # the whole attempt, not each read
    done.wait(25)


def test_only_the_start_of_a_huge_answer_is_read():
    sent = []

    def huge(conn) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        chunk = b"a" * 65536
        for _ in range(1600):
            conn.sendall(chunk)
            sent.append(len(chunk))

    url, done = serve_once(huge)
    answer = post(url, timeout_s=5.0)
    assert answer.status == 200 and answer.body == "a" * sender.SNIPPET_CHARS
    done.wait(10)
    assert sum(sent) < 20 * 1024 * 1024  # the sender closed long before the 100 MB were sent


def test_a_host_that_does_not_resolve_is_retried_and_a_refused_address_is_final():
    unresolved = post("http://no-such-host.invalid/hooks")
    assert unresolved.status is None and not unresolved.refused and "does not resolve" in unresolved.error
    refused = post("http://127.0.0.1:9/hooks", allow_private=False)
    assert refused.refused and refused.error.startswith("refused")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/hooks"])
def test_a_closed_port_is_a_network_error(url):
    answer = post(url)
    assert answer.status is None and answer.error.startswith("network error") and not answer.refused


def self_signed(folder) -> tuple[str, str]:
    """A certificate for "localhost" (and 127.0.0.1) and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def https_receiver(cert: str, key: str) -> tuple[int, list]:
    """An HTTPS receiver on 127.0.0.1 answering 200; the server names (SNI) it was asked for."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    names: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], names


def test_https_goes_to_the_checked_address_and_still_verifies_the_hosts_certificate(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    port, names = https_receiver(cert, key)
    untrusted = post(f"https://localhost:{port}/hooks")
    assert untrusted.status is None and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # trust this certificate (OpenSSL reads it per context)
    trusted = post(f"https://localhost:{port}/hooks")
    assert trusted.status == 200 and trusted.body == "ok", trusted
    assert names[-1] == "localhost"  # the host's name went in the TLS handshake, not the address
