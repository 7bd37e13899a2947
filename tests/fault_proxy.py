"""A TCP proxy on loopback that can be told to misbehave, for providers with no fault switch.

    proxy = FaultProxy("127.0.0.1", moto_port).start()
    proxy.set_mode("refuse")            # connection refused
    proxy.set_mode("unreachable")       # connecting hangs, as with a host that drops packets
    proxy.set_mode("hang")              # accept, read, never answer
    proxy.set_mode("reset")             # accept, then reset the connection
    proxy.set_mode("cut_after", bytes=6 * 1024 * 1024)   # drop each connection midway
    proxy.set_mode("stall_after", bytes=6 * 1024 * 1024) # go silent midway, for everyone
    proxy.set_mode("pass")

A mode applies to new connections; "refuse", "unreachable" and ``stop()`` also close
open ones. "unreachable" keeps the port's accept queue full (a listening socket with
a backlog of 0 and one connection nobody accepts): the kernel then drops every new
connection's SYN, and the client waits in SYN retransmission, as it does for a host
behind a firewall that drops packets. "stall_after" passes N bytes from the clients
in all, then reads nothing more and answers nothing, on open and new connections
alike, until the mode changes: a server that goes silent in the middle of an upload.
``stalled_at`` then tells when it went silent (``time.monotonic()``).
Every socket is closed by the thread that uses it; other threads only shut sockets
down, which wakes whoever is blocked on them.
"""

import selectors
import socket
import struct
import threading
import time

MODES = ("pass", "refuse", "unreachable", "hang", "reset", "cut_after", "stall_after")
CLOSING_MODES = ("refuse", "unreachable")  # no listener: open connections are closed too
SIZED_MODES = ("cut_after", "stall_after")  # modes that take bytes=N
BUFFER_SIZE = 64 * 1024
POLL_INTERVAL = 0.1
TIMEOUT = 5


class FaultProxy:
    def __init__(self, target_host, target_port, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = None
        self.mode = "pass"
        self.cut_after = None
        self.connections = 0
        self._stall_budget = 0  # bytes "stall_after" still passes
        self.stalled_at = None
        self._blackhole = ()  # "unreachable": the full listener and its unaccepted connection
        self._lock = threading.Lock()
        self._running = False
        self._listener = None
        self._accept_thread = None
        self._connection_threads = set()
        self._open_sockets = set()
        self._generation = 0  # bumped to close every open connection

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        with self._lock:
            self._running = True
        self._listen()  # even in "refuse", to pick the port
        if self.mode in CLOSING_MODES:
            self._stop_listening()
            if self.mode == "unreachable":
                self._fill_port()
        return self

    def stop(self):
        with self._lock:
            self._running = False
        self._stop_listening()
        self._close_connections()
        self._empty_port()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def set_mode(self, mode, **options):
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; one of {', '.join(MODES)}")
        cut_after = options.pop("bytes", None)
        if options:
            raise TypeError(f"Unexpected options for {mode!r}: {', '.join(options)}")
        if (mode in SIZED_MODES) != (cut_after is not None):
            raise ValueError('bytes=N goes with "cut_after" and "stall_after", and only with them')
        with self._lock:
            self.mode, self.cut_after = mode, cut_after
            self._stall_budget = cut_after if mode == "stall_after" else 0
            self.stalled_at = None
            running = self._running
        if mode in CLOSING_MODES:
            self._stop_listening()
            self._close_connections()
            if mode == "unreachable" and running:
                self._fill_port()
        else:
            self._empty_port()
            if running:
                self._listen()

    def _fill_port(self):
        """Listen with a full accept queue, so that new connections hang while connecting."""
        if self._blackhole:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(0)
        filler = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        self._blackhole = (listener, filler)

    def _empty_port(self):
        blackhole, self._blackhole = self._blackhole, ()
        for sock in blackhole:
            _abort(sock)

    def _listen(self):
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.settimeout(POLL_INTERVAL)
            try:
                listener.bind((self.host, self.port or 0))  # the same port again after "refuse"
                listener.listen(64)
            except OSError:
                listener.close()
                raise
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._accept_thread = threading.Thread(
                target=self._accept_loop, args=(listener,), name=f"fault-proxy-{self.port}", daemon=True
            )
            self._accept_thread.start()

    def _stop_listening(self):
        with self._lock:
            listener, self._listener = self._listener, None
            accept_thread, self._accept_thread = self._accept_thread, None
        if listener is None:
            return
        _shutdown(listener)  # wakes accept(); the accept thread closes the socket
        accept_thread.join(TIMEOUT)

    def _accept_loop(self, listener):
        try:
            while self._listener is listener:
                try:
                    client, _ = listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                client.settimeout(None)
                with self._lock:
                    self.connections += 1
                    mode, cut_after, generation = self.mode, self.cut_after, self._generation
                if mode in ("reset",) + CLOSING_MODES:
                    _abort(client)
                    continue
                thread = threading.Thread(
                    target=self._serve,
                    args=(client, mode, cut_after, generation),
                    name=f"fault-proxy-{self.port}-connection",
                    daemon=True,
                )
                with self._lock:
                    self._connection_threads.add(thread)
                thread.start()
        finally:
            listener.close()

    def _close_connections(self):
        with self._lock:
            self._generation += 1
            for sock in self._open_sockets:
                _shutdown(sock)
            threads = list(self._connection_threads)
        for thread in threads:
            thread.join(TIMEOUT)

    def _register(self, sock, generation):  # False if the connection is already closing
        with self._lock:
            if generation != self._generation:
                return False
            self._open_sockets.add(sock)
            return True

    def _serve(self, client, mode, cut_after, generation):
        upstream = None
        ended_cleanly = False  # one side closed politely: pass that on without a reset
        try:
            if not self._register(client, generation):
                return
            if mode == "hang":
                self._hang(client, generation)
                return
            if mode == "stall_after" and self._stalled():
                self._stall(mode, generation)
                return
            upstream = socket.create_connection(self.target, timeout=TIMEOUT)
            upstream.settimeout(None)
            if self._register(upstream, generation):
                ended_cleanly = self._forward(client, upstream, mode, cut_after, generation)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open_sockets.difference_update({client, upstream})
                self._connection_threads.discard(threading.current_thread())
            for sock in (client, upstream):
                if sock is not None:
                    # A reset would throw away a response still in the send buffer.
                    _close(sock) if ended_cleanly else _abort(sock)

    def _hang(self, client, generation):
        client.settimeout(POLL_INTERVAL)
        while self.mode == "hang" and self._generation == generation:
            try:
                if not client.recv(BUFFER_SIZE):
                    return
            except socket.timeout:
                continue

    def _stalled(self):
        with self._lock:
            return self._stall_budget == 0

    def _stall(self, mode, generation):
        """Read nothing and answer nothing while ``mode`` lasts."""
        while self.mode == mode and self._generation == generation:
            time.sleep(POLL_INTERVAL)

    def _take_from_stall_budget(self, size):
        with self._lock:
            allowed = min(size, self._stall_budget)
            self._stall_budget -= allowed
            if self._stall_budget == 0 and self.stalled_at is None:
                self.stalled_at = time.monotonic()
            return allowed

    def _forward(self, client, upstream, mode, cut_after, generation):
        """Relay both ways; True when a side closed its end, False when cut, stalled or stopped."""
        allowed_upstream = cut_after if mode == "cut_after" else None  # None for no limit
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while self._generation == generation:
                if mode == "stall_after" and self._stalled():
                    self._stall(mode, generation)
                    return False
                for key, _ in selector.select(timeout=POLL_INTERVAL):
                    source, destination = key.fileobj, key.data
                    data = source.recv(BUFFER_SIZE)
                    if not data:
                        return True
                    if source is client and mode == "stall_after":
                        data = data[: self._take_from_stall_budget(len(data))]
                    if source is client and allowed_upstream is not None:
                        if len(data) >= allowed_upstream:
                            destination.sendall(data[:allowed_upstream])
                            return False
                        allowed_upstream -= len(data)
                    destination.sendall(data)
        return False


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock):
    """Close politely: what was sent still arrives, then the peer reads end-of-file."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def _abort(sock):
    """Close with a reset rather than a polite FIN, as a failing network would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
