"""A TCP proxy on loopback that can be told to misbehave, for providers with no fault switch.

    proxy = FaultProxy("127.0.0.1", moto_port).start()
    proxy.set_mode("refuse")            # connection refused
    proxy.set_mode("hang")              # accept, read, never answer
    proxy.set_mode("reset")             # accept, then reset the connection
    proxy.set_mode("cut_after", bytes=6 * 1024 * 1024)   # drop each connection midway
    proxy.set_mode("pass")

A mode applies to new connections; "refuse" and ``stop()`` also close open ones.
"""

import selectors
import socket
import struct
import threading

MODES = ("pass", "refuse", "hang", "reset", "cut_after")
BUFFER = 64 * 1024


class FaultProxy:
    def __init__(self, target_host, target_port, host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = None
        self.mode = "pass"
        self.cut_after = None
        self.connections = 0
        self._listener = None
        self._lock = threading.Lock()
        self._open = set()
        self._stopped = threading.Event()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        self._listen()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def set_mode(self, mode, bytes=None):
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; one of {', '.join(MODES)}")
        with self._lock:
            self.mode, self.cut_after = mode, bytes
        if mode == "refuse":
            self._unlisten()
            self._close_open_connections()
        else:
            self._listen()

    def stop(self):
        self._stopped.set()
        self._unlisten()
        self._close_open_connections()

    # -- listening -----------------------------------------------------------

    def _listen(self):
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port or 0))
            listener.listen(64)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _unlisten(self):
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept_loop(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                self.connections += 1
                mode, cut_after = self.mode, self.cut_after
                self._open.add(client)
            threading.Thread(target=self._serve, args=(client, mode, cut_after), daemon=True).start()

    def _close_open_connections(self):
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _abort(sock)

    # -- one connection ------------------------------------------------------

    def _serve(self, client, mode, cut_after):
        try:
            if mode == "reset":
                _abort(client)
            elif mode == "hang":
                self._hang(client)
            else:
                self._forward(client, cut_after)
        finally:
            with self._lock:
                self._open.discard(client)
            _abort(client)

    def _hang(self, client):
        client.settimeout(0.2)
        while not self._stopped.is_set() and self.mode == "hang":
            try:
                if not client.recv(BUFFER):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _forward(self, client, cut_after):
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            return
        with self._lock:
            self._open.add(upstream)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        sent_upstream = 0
        try:
            while not self._stopped.is_set():
                for key, _ in selector.select(timeout=0.2):
                    data = key.fileobj.recv(BUFFER)
                    if not data:
                        return
                    if key.fileobj is client and cut_after is not None:
                        if sent_upstream + len(data) > cut_after:
                            return
                        sent_upstream += len(data)
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                self._open.discard(upstream)
            _abort(upstream)


def _abort(sock):
    """Close with a reset rather than a polite FIN, as a failing network would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
