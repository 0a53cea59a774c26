"""Who may use `emotionnas serve`: the API key and the Host names that reach this machine.

The key: from `--api-key-file PATH` (first line), from $EMOTIONNAS_API_KEY, or from
`--api-key KEY`, which every local user can read in the process list (/proc/PID/cmdline), so
the file or the environment are preferred. Whatever the source, a key shorter than 16
characters is refused in one line: a short key is guessed, and the comparison being constant
time does not help against guessing. Keys are printable ASCII without spaces, because they
travel in an HTTP header. The file is read with bounds (a regular file, at most 4 KB, opened
without blocking: a FIFO or /dev/zero cannot hang or flood start-up).

The Host names: a server bound to all interfaces (0.0.0.0 or ::) is reached by this machine's
own names and addresses, so they are allowed as Host besides the loopback names: the host name,
what it resolves to, and the addresses of the network interfaces, found with the standard
library only (one SIOCGIFADDR ioctl per interface for IPv4, /proc/net/if_inet6 for IPv6; both
Linux, nothing elsewhere), so the result does not depend on which optional packages happen to
be installed. An IP literal or this machine's own name as Host cannot come
from a DNS-rebinding page (its Host is the attacker's name), which is what the allow-list
stops; other names still need --allow-host.
"""

import ipaddress
import os
import socket
import stat
import threading

from emotionnas.errors import ConfigError, scrub

API_KEY_ENV = "EMOTIONNAS_API_KEY"
MIN_KEY_LENGTH = 16
KEY_FILE_MAX_BYTES = 4096
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ALL_INTERFACES = ("0.0.0.0", "::")
KEY_HINT = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def check_api_key(key: str, source: str) -> str:
    """The key, stripped, or a one-line ConfigError naming where it came from."""
    key = key.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"API key from {source}: {len(key)} characters, at least {MIN_KEY_LENGTH} needed "
                          f"({KEY_HINT})")
    if not all(33 <= ord(ch) < 127 for ch in key):
        raise ConfigError(f"API key from {source}: use printable ASCII without spaces (it travels in an HTTP "
                          f"header; {KEY_HINT})")
    return key


def read_key_file(path) -> str:
    """The first line of `path`, stripped and checked; one-line ConfigError naming the file."""
    where = f"--api-key-file {scrub(str(path))}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or type(e).__name__})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{where}: not a regular file")
        data = os.read(fd, KEY_FILE_MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or type(e).__name__})") from None
    finally:
        os.close(fd)
    if len(data) > KEY_FILE_MAX_BYTES:
        raise ConfigError(f"{where}: larger than {KEY_FILE_MAX_BYTES} bytes (a key file holds one line)")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"{where}: the first line is empty (it should hold the key)")
    return check_api_key(lines[0], where)


def resolve_api_key(flag: str | None = None, key_file=None, environ=os.environ) -> str | None:
    """The key from --api-key-file, --api-key or $EMOTIONNAS_API_KEY (in that order; the first
    two exclude each other), checked; None when there is none."""
    if flag is not None and key_file is not None:
        raise ConfigError("give the API key once: --api-key or --api-key-file, not both")
    if key_file is not None:
        return read_key_file(key_file)
    if flag is not None:
        return check_api_key(flag, "--api-key")
    if environ.get(API_KEY_ENV):
        return check_api_key(environ[API_KEY_ENV], f"${API_KEY_ENV}")
    return None


def own_addresses(resolve_seconds: float = 2.0) -> tuple:
    """This machine's host name, what it resolves to and its interfaces' addresses, lower
    case, without IPv6 zone suffixes (`%eth0`). Name resolution runs in a thread given
    `resolve_seconds`: a dead resolver must not hang start-up."""
    hostname = socket.gethostname()
    found = {hostname} | _interface_addresses()
    resolved: set = set()

    def resolve():
        try:
            resolved.update(str(info[4][0]) for info in socket.getaddrinfo(hostname, None))
        except (OSError, UnicodeError):
            pass
    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(resolve_seconds)
    found |= set(resolved) if not worker.is_alive() else set()
    return tuple(sorted({a.split("%")[0].lower() for a in found if a}))


def _interface_addresses() -> set:
    """The interfaces' IPv4 and IPv6 addresses (standard library only; empty where unknown)."""
    return _ipv4_by_ioctl() | _ipv6_from_proc()


def _ipv4_by_ioctl() -> set:
    """IPv4 address of each interface by SIOCGIFADDR (Linux); empty elsewhere."""
    try:
        import fcntl
        import struct
        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):
        return set()
    out = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:  # an interface without an IPv4 address
                continue
            out.add(socket.inet_ntoa(packed[20:24]))
    return out


def _ipv6_from_proc(path: str = "/proc/net/if_inet6") -> set:
    """IPv6 addresses of the interfaces from the kernel's table (Linux: one row per address,
    32 hex digits first); empty where the file is missing or unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            rows = f.read(1 << 16).splitlines()  # bounded: a few rows per interface
    except (OSError, UnicodeDecodeError):
        return set()
    out = set()
    for row in rows:
        digits = row.split()[0] if row.split() else ""
        if len(digits) == 32:
            try:
                out.add(str(ipaddress.IPv6Address(bytes.fromhex(digits))))
            except ValueError:  # not hex: skip the row
                continue
    return out


def hosts_for(bind: str, allow_hosts) -> tuple:
    """The Host names a server bound to `bind` accepts: the given ones, plus the bind address
    itself, or, bound to all interfaces, this machine's own names and addresses."""
    extra = own_addresses() if bind in ALL_INTERFACES else () if bind in LOOPBACK_HOSTS else (bind.lower(),)
    return tuple(dict.fromkeys([*allow_hosts, *extra]))
