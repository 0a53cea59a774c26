"""Deadlines and limits on the TCP connections of `emotionnas serve` (docs/robustness.md, "Service").

Why a protocol class and not middleware: the ASGI app (and its `Guard`, serve.py) sees a
request only once its headers are complete, so a client that opens connections and never
finishes its headers (silent, or one byte a second: "slowloris") never reaches it. uvicorn's
own knob, `limit_concurrency`, counts such connections too and answers every request beyond
the limit with 503, /health included: 65 silent sockets, no API key needed, took the service
down for as long as they stayed open (issue 31). So the defence sits where connections are
accepted: a subclass of uvicorn's h11 protocol (given to uvicorn as `http=`), which

- reads each connection's phase from h11's state machine: WAITING for request headers (just
  opened, or idle on keep-alive after a response), reading the BODY, or SERVING (the request
  is complete: the app's queue bound and time limit take over);
- arms one deadline per phase: `header_timeout` from the start of WAITING (bytes that arrive
  do not extend it, so a byte a second gains nothing), `body_timeout` from the headers to the
  end of the body (then a one-line 408, and the connection is closed: an unread body is never
  swallowed for ever);
- counts open connections per client address and in all; a connection that would exceed
  either limit evicts the oldest WAITING connection (that client's for the per-client limit,
  anyone's for the global one). A client that sends its request promptly is therefore always
  served, and a flood of idle sockets only evicts itself;
- when nothing can be evicted (every connection is reading a body or being served), admits
  the newcomer to a small health lane beyond the limits: there GET /health is answered (and
  the connection closed), anything else gets 503 with Retry-After. The lane is bounded and
  evicts its own oldest WAITING member; when it is full of requests being answered, the
  newcomer is closed at once.

So at most `max_connections + health_lane` connections are open, each holding at most
uvicorn's `h11_max_incomplete_event_size` of unparsed headers, and none stays WAITING or in
BODY past its deadline. Every connection of one server is handled on its one event loop: the
book needs no lock.

Behind a reverse proxy every request comes from the proxy's address: raise --max-per-client to
--max-connections there (the proxy should limit its own clients).
"""

import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

WAITING, BODY, SERVING = "waiting for headers", "reading the body", "serving"
LOG_EVERY = 10.0  # seconds between two summary lines of dropped connections (a flood logs a line, not a line each)
log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0  # seconds from opening (or from the previous response) to complete headers
    body_timeout: float = 60.0    # seconds from the headers to the end of the body
    max_per_client: int = 16      # open connections per client address
    max_connections: int = 64     # open connections in all
    health_lane: int = 8          # connections beyond the limits that may only ask GET /health


class ConnectionBook:
    """The open connections of one server, each with its client address and phase; places a new
    connection (regular, health lane, or refused) by evicting the oldest WAITING one."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.regular: set = set()
        self.lane: set = set()
        self.dropped: Counter = Counter()  # since the last log line
        self.order = itertools.count()  # ranks connections by when they entered their phase (ties impossible)
        self._logged_at = float("-inf")

    def admit(self, conn) -> str:
        """'regular', 'lane' (GET /health only) or 'refused' (the caller closes it)."""
        mine = [c for c in self.regular if c.peer == conn.peer]
        if len(mine) >= self.limits.max_per_client and not self._evict(mine, "evicted (per-client limit)"):
            return self._to_lane(conn)
        if len(self.regular) >= self.limits.max_connections and \
                not self._evict(self.regular, "evicted (connection limit)"):
            return self._to_lane(conn)
        self.regular.add(conn)
        return "regular"

    def _to_lane(self, conn) -> str:
        if len(self.lane) >= self.limits.health_lane and not self._evict(self.lane, "evicted (health lane)"):
            self.note("refused (every slot busy)")
            return "refused"
        self.lane.add(conn)
        return "lane"

    def _evict(self, candidates, why: str) -> bool:
        waiting = [c for c in candidates if c.phase == WAITING]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: c.phase_order)
        self.discard(victim)
        victim.drop()
        self.note(why)
        return True

    def discard(self, conn) -> None:
        self.regular.discard(conn)
        self.lane.discard(conn)

    def note(self, what: str) -> None:
        """Count a dropped connection; log the counts at most every LOG_EVERY seconds."""
        self.dropped[what] += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            log.warning("connections closed: %s; open: %d (+%d in the health lane)",
                        ", ".join(f"{n} {w}" for w, n in sorted(self.dropped.items())),
                        len(self.regular), len(self.lane))
            self.dropped.clear()
            self._logged_at = now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with per-phase deadlines and connection limits (module docstring).
    Use `guarded_protocol(limits)`: it makes a subclass with its own book, one per server."""

    book: ConnectionBook

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.peer = self.client[0] if self.client else "local"
        self.phase, self.phase_order, self._deadline = None, 0, None
        self._track()
        place = self.book.admit(self)
        if place == "refused":
            transport.close()
        elif place == "lane":
            self.app = health_only(self.app)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # keep-alive: h11 starts the next cycle, WAITING again
        self._track()

    def connection_lost(self, exc) -> None:
        self._cancel_deadline()
        self.book.discard(self)
        super().connection_lost(exc)

    def drop(self) -> None:
        """Close this connection now (evicted): no deadline of its own fires afterwards."""
        self._cancel_deadline()
        self.transport.close()

    def _current_phase(self) -> str:
        their, ours = self.conn.their_state, self.conn.our_state
        if their is h11.IDLE and ours is h11.IDLE:
            return WAITING
        return BODY if their is h11.SEND_BODY else SERVING  # an early refusal leaves them in SEND_BODY: BODY

    def _track(self) -> None:
        """On a change of phase, restart the clock and arm that phase's deadline (none when SERVING)."""
        phase = self._current_phase()
        if phase == self.phase:
            return
        self._cancel_deadline()
        self.phase, self.phase_order = phase, next(self.book.order)
        if phase == WAITING:
            self._deadline = self.loop.call_later(self.book.limits.header_timeout, self._headers_late)
        elif phase == BODY:
            self._deadline = self.loop.call_later(self.book.limits.body_timeout, self._body_late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        self.book.discard(self)
        self.book.note("closed at the header deadline")
        self.transport.close()

    def _body_late(self) -> None:
        """A 408 if the app has not answered yet (the app then sees a disconnect, and its own
        late answer is dropped), and the connection closed."""
        self._deadline = None
        self.book.discard(self)
        self.book.note("closed at the body deadline")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.disconnected = True
            cycle.message_event.set()
            self._send_408()
        self.transport.close()

    def _send_408(self) -> None:
        body = b'{"error": "request body slower than the time limit"}'
        try:
            out = self.conn.send(h11.Response(status_code=408, reason=b"Request Timeout", headers=[
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"connection", b"close")]))
            out += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:  # the protocol state allows no answer: closing says enough
            return
        self.transport.write(out)


def health_only(app):
    """The app of a health-lane connection: GET /health through `app` (Host and key checks
    included), then close; anything else 503 + Retry-After."""
    close = (b"connection", b"close")

    async def lane(scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and scope["path"] == "/health":
            async def send_closing(message):
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), close]}
                await send(message)
            return await app(scope, receive, send_closing)
        body = b'{"error": "busy: too many open connections, retry later"}'
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"2"), close]})
        await send({"type": "http.response.body", "body": body})
    return lane


def guarded_protocol(limits: ConnectionLimits) -> type:
    """A protocol class for uvicorn's `http=`, with a book of its own (so two servers in one
    process, as in tests, do not count each other's connections)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"book": ConnectionBook(limits)})
