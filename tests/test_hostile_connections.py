"""Issue 31's attacks on `emotionnas serve`, one test per class (docs/robustness.md, "Service"):
idle and slow connections (header and body deadlines, per-client and global limits, the
health lane) against a real uvicorn server on loopback configured as `emotionnas serve`
configures it (serve.server_config), and API keys (file, environment, length) and this
machine's own addresses as Host. Every loop is bounded in count and seconds; all traffic is
on 127.0.0.x. Issue 16's attacks (decoding, queue, Host, CORS, page) are in
test_hostile_service.py, whose helpers these tests share."""
import http.client
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from emotionnas.errors import ConfigError

pytest.importorskip("fastapi")

from emotionnas.recognizer.serve import ServeSettings, create_app  # noqa: E402
from emotionnas.recognizer.serve_access import (API_KEY_ENV, _ipv6_from_proc, own_addresses,  # noqa: E402
                                                resolve_api_key)
from test_hostile_service import speechlike, wav  # noqa: E402

KEY = "a-test-key-0123456789"  # 21 characters: long enough
SPEECH = wav(speechlike(1.0))


@contextmanager
def guarded_server(app, settings: ServeSettings, host: str = "127.0.0.1"):
    """A real uvicorn server configured as `emotionnas serve` configures it (serve.server_config:
    the guarded protocol with these settings' deadlines and limits), on a free port of `host`,
    in a thread; yields the port."""
    import uvicorn

    from emotionnas.recognizer.serve import server_config
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, host, port, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the server did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to the server from `source` (127.0.0.x: a different client address)."""
    s = socket.socket()
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (end of file or reset); never waits."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(5)


def wait_until(condition, seconds: float) -> bool:
    """Poll `condition` every 50 ms for at most `seconds`; its last value."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)
    return condition()


def read_until_closed(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple:
    """Everything the server sends until it closes the connection (bounded by `seconds`),
    sending one byte of `trickle` every 0.2 s meanwhile; (bytes, closed)."""
    got, end, i = b"", time.monotonic() + seconds, 0
    sock.settimeout(0.2)
    while time.monotonic() < end:
        if i < len(trickle):
            try:
                sock.send(trickle[i:i + 1])
                i += 1
            except OSError:
                pass
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def http_get(port: int, path: str, headers=None, source: str = "127.0.0.1") -> http.client.HTTPResponse:
    """One GET on a connection of its own (closed after), from `source`; the response, read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        r.body = r.read()
        return r
    finally:
        conn.close()


@pytest.mark.parametrize("per_client,total", [(16, 64), (128, 128)], ids=["default-limits", "roomy-limits"])
def test_idle_and_slow_header_connections_leave_health_and_keyed_predict_answering(rec, per_client, total):
    """Issue 31: with 65-70 silent sockets open, uvicorn's limit_concurrency answered /health and
    every keyed request 503, and closed none of them. Now 70 silent connections and 3 that send
    their headers a byte a second: /health and a keyed /predict answer 200 while they are held.
    With the default limits the flood evicts itself (the oldest silent ones are closed: one
    client address may hold 16); with room for all of them nothing is closed or refused."""
    import requests
    settings = ServeSettings(api_key=KEY, header_timeout=60.0, max_per_client=per_client, max_connections=total)
    with guarded_server(create_app(rec, settings), settings) as port:
        idle = [connect(port) for _ in range(70)]
        slow = [connect(port) for _ in range(3)]
        stop = threading.Event()

        def trickle():  # one byte a second on each slow connection, at most 15 s
            head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            for i in range(15):
                for s in slow:
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        pass
                if stop.wait(1.0):
                    return
        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            stop.wait(1.5)  # the slow ones have sent a byte or two
            with requests.Session() as session:  # one keep-alive connection for both requests
                health = session.get(f"http://127.0.0.1:{port}/health", headers={"X-API-Key": KEY}, timeout=10)
                predict = session.post(f"http://127.0.0.1:{port}/predict", headers={"X-API-Key": KEY}, timeout=30,
                                       files={"file": ("a.wav", SPEECH, "audio/wav")})
            assert health.status_code == 200 and health.json()["labels"] == rec.labels
            assert predict.status_code == 200 and predict.json()["label"] in rec.labels
            held = idle + slow
            expected_closed = 0 if per_client > len(held) else len(held) - (per_client - 1)  # our session took a slot
            assert wait_until(lambda: sum(map(closed_by_server, held)) == expected_closed, 5), \
                f"{sum(map(closed_by_server, held))} closed, expected {expected_closed}"
            assert not any(map(closed_by_server, slow))  # the newest survive: the oldest waiting ones went first
        finally:
            stop.set()
            sender.join(5)
            for s in idle + slow:
                s.close()


def test_a_connection_that_never_finishes_its_headers_is_closed_at_the_deadline(rec):
    """Silent, one byte at a time, or idle on keep-alive with half a request: each is closed
    once the header deadline has passed since it opened (or since its previous response);
    bytes arriving do not extend it. A prompt request is still answered."""
    settings = ServeSettings(header_timeout=1.0)
    with guarded_server(create_app(rec, settings), settings) as port:
        silent, slow, keep = connect(port), connect(port), connect(port)
        keep.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = http.client.HTTPResponse(keep)
        first.begin()
        assert first.status == 200 and json.loads(first.read())["status"] == "ok"
        keep.sendall(b"GET /health HTTP/1.1\r\n")  # the next request's headers, never finished
        try:
            _, slow_closed = read_until_closed(slow, 6.0, trickle=b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert slow_closed, "a connection sending a byte every 0.2 s was kept past the header deadline"
            assert wait_until(lambda: closed_by_server(silent) and closed_by_server(keep), 3)
            assert http_get(port, "/health").status == 200
        finally:
            for s in (silent, slow, keep):
                s.close()


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def test_a_slow_body_gets_a_408_and_a_refused_body_is_not_read(rec):
    """An upload whose body arrives slower than the request time limit: a one-line 408 and the
    connection closed, without an error in the server's log; nothing is left in the queue. A
    refusal before the body (here: too big) closes the connection instead of reading the body."""
    settings = ServeSettings(timeout=1.0)
    errors = _Errors()
    with guarded_server(create_app(rec, settings), settings) as port:
        logging.getLogger("uvicorn.error").addHandler(errors)  # after start-up: uvicorn sets its logging up
        try:
            slow = connect(port)
            slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
                         b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n--xyz\r\n")
            answer, closed = read_until_closed(slow, 6.0, trickle=b"Content-Disposition: form-data; name=file")
            slow.close()
            assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]
            body = answer.split(b"\r\n\r\n", 1)[1]
            assert json.loads(body)["error"] == "request body slower than the time limit"
            big = connect(port)
            big.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 900000000\r\n\r\n" + b"x" * 4096)
            answer, closed = read_until_closed(big, 3.0)
            big.close()
            assert closed and answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()
            health = http_get(port, "/health")
            assert health.status == 200 and json.loads(health.body)["busy"] == 0
        finally:
            logging.getLogger("uvicorn.error").removeHandler(errors)
    assert errors.records == []


def test_per_client_and_global_limits_evict_the_oldest_waiting_connection(rec):
    """Three connections per client address and five in all (127.0.0.2-4 are three clients):
    a fourth from one address closes that address's oldest waiting connection, and a sixth in
    all the oldest waiting one of anybody's; the others stay open."""
    settings = ServeSettings(header_timeout=60.0, max_per_client=3, max_connections=5)
    with guarded_server(create_app(rec, settings), settings) as port:
        a = [connect(port, "127.0.0.2") for _ in range(3)]
        b = [connect(port, "127.0.0.3") for _ in range(2)]
        try:
            a.append(connect(port, "127.0.0.2"))  # a fourth from .2
            assert wait_until(lambda: closed_by_server(a[0]), 3)
            assert not any(closed_by_server(s) for s in a[1:] + b)
            c = connect(port, "127.0.0.4")  # a sixth in all
            assert wait_until(lambda: closed_by_server(a[1]), 3)
            assert not any(closed_by_server(s) for s in a[2:] + b + [c])
            c.close()
            assert http_get(port, "/health", source="127.0.0.3").status == 200
        finally:
            for s in a + b:
                s.close()


def test_health_is_answered_when_every_connection_slot_is_busy(rec):
    """Both slots hold uploads the app is reading (nothing to evict): a newcomer lands in the
    health lane, where GET /health is answered (and the connection closed) and anything else
    gets 503 + Retry-After. Once a slot frees, /predict is served again."""
    import requests
    settings = ServeSettings(header_timeout=60.0, max_per_client=2, max_connections=2)
    with guarded_server(create_app(rec, settings), settings) as port:
        uploads = [connect(port, "127.0.0.2") for _ in range(2)]
        try:
            for u in uploads:  # the server says "100 Continue" once the app reads the body: they are in BODY
                u.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000\r\n"
                          b"Content-Type: multipart/form-data; boundary=xyz\r\nExpect: 100-continue\r\n\r\n")
                assert u.recv(1024).startswith(b"HTTP/1.1 100")
            health = http_get(port, "/health")
            assert health.status == 200 and health.getheader("connection") == "close"
            assert json.loads(health.body)["status"] == "ok"
            refused = requests.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.wav", SPEECH)}, timeout=10)
            assert refused.status_code == 503 and "too many open connections" in refused.json()["error"]
            assert refused.headers["retry-after"]
        finally:
            for u in uploads:
                u.close()
        served = None
        for _ in range(20):  # the server notices the closed uploads within a loop iteration or two
            served = requests.post(f"http://127.0.0.1:{port}/predict", files={"file": ("a.wav", SPEECH)}, timeout=30)
            if served.status_code == 200:
                break
            time.sleep(0.1)
        assert served.status_code == 200 and served.json()["label"] in rec.labels


def test_api_keys_from_a_file_or_the_environment_and_short_keys_refused(rec, tmp_path, capsys):
    """--api-key-file (first line, stripped; bounded: regular files of at most 4 KB) and
    $EMOTIONNAS_API_KEY; from every source a key shorter than 16 characters, or not printable
    ASCII, is refused in one line naming the source; an unreadable file likewise, at once."""
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}  \nthe rest is ignored\n")
    assert resolve_api_key(key_file=key_file) == KEY
    assert resolve_api_key(environ={API_KEY_ENV: KEY}) == KEY
    assert resolve_api_key(environ={}) is None
    short, big, fifo = tmp_path / "short", tmp_path / "big", tmp_path / "fifo"
    short.write_text("hunter2\n")
    big.write_bytes(b"k" * 5000)
    os.mkfifo(fifo)  # opened without blocking: no writer cannot hang start-up
    cases = [({"key_file": short}, f"{short}: 7 characters, at least 16"), ({"flag": "hunter2"}, "--api-key: 7"),
             ({"environ": {API_KEY_ENV: "hunter2"}}, f"${API_KEY_ENV}: 7"),
             ({"flag": "a key with spaces in it"}, "printable ASCII"),
             ({"key_file": tmp_path / "missing"}, "missing: cannot read it"),
             ({"key_file": big}, "larger than 4096 bytes"), ({"key_file": fifo}, "fifo: not a regular file"),
             ({"key_file": tmp_path}, "not a regular file"), ({"flag": KEY, "key_file": key_file}, "not both")]
    for kwargs, words in cases:
        with pytest.raises(ConfigError) as e:
            resolve_api_key(**kwargs)
        assert words in str(e.value) and "\n" not in str(e.value), (kwargs, str(e.value))
    with pytest.raises(ConfigError, match="at least 16"):
        create_app(rec, api_key="hunter2")
    from emotionnas.cli import main
    assert main(["serve", "--model", str(tmp_path / "no-model"), "--api-key-file", str(short)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: API key from --api-key-file {short}: 7 characters"), err


def _own_address() -> str:
    """An address of this machine that is not loopback (an IPv4 one first), else its host name."""
    def kind(a):
        try:
            ip = ipaddress.ip_address(a)
        except ValueError:
            return None
        return None if ip.is_loopback else ip.version
    ips = sorted((kind(a), a) for a in own_addresses() if kind(a))
    return ips[0][1] if ips else socket.gethostname().lower()


def test_cli_on_all_interfaces_takes_the_key_from_a_file_and_its_own_address_as_host(model_dir, tmp_path):
    """`emotionnas serve --host 0.0.0.0 --api-key-file F`: the key is not in the process's
    command line, and a request addressed to one of this machine's own addresses (sent over
    127.0.0.1 with that Host header: no traffic leaves the machine) is answered; other names
    are not, and the key is required."""
    from emotionnas.recognizer.serve import settings_for
    own = _own_address()
    assert own in settings_for("0.0.0.0", ServeSettings(api_key=KEY)).allow_hosts
    assert own not in settings_for("127.0.0.1", ServeSettings(api_key=KEY)).allow_hosts
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "emotionnas", "serve", "--model", str(model_dir), "--host",
                             "0.0.0.0", "--port", str(port), "--api-key-file", str(key_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**env, "OMP_NUM_THREADS": "1"})
    try:
        host = f"[{own}]:{port}" if ":" in own else f"{own}:{port}"

        def health(host_header, key=KEY):
            try:
                return http_get(port, "/health", {"Host": host_header, **({"X-API-Key": key} if key else {})}).status
            except OSError:
                return None
        assert wait_until(lambda: proc.poll() is not None or health(f"127.0.0.1:{port}") == 200, 90), \
            "the server did not start"
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert KEY not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert health(host) == 200
        assert health("evil.example") == 400
        assert health(host, key=None) == 401
        assert health(host, key="a-wrong-key-0123456789") == 401
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_interface_addresses_come_from_the_standard_library(tmp_path):
    """IPv6 addresses are read from the kernel's table (/proc/net/if_inet6 rows: 32 hex digits
    first), rows that are not addresses are skipped, a missing table gives none; and every
    address in this machine's table is among the names a server bound to all interfaces
    accepts (no optional package decides what is found)."""
    table = tmp_path / "if_inet6"
    table.write_text("fd000000000000000000000000000002 04 40 00 82     eth0\n"
                     "00000000000000000000000000000001 01 80 10 80       lo\n"
                     "not-an-address 01 80 10 80 lo\n\n" + "zz" * 16 + " 01 80 10 80 lo\n")
    assert _ipv6_from_proc(str(table)) == {"fd00::2", "::1"}
    assert _ipv6_from_proc(str(tmp_path / "missing")) == set()
    assert _ipv6_from_proc() <= set(own_addresses())
