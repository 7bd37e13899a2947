"""The client of Stremora's direct uploads: start, send to the target, fall over, complete."""

import mimetypes
import os
import random
import time

import requests

from stremora_client.errors import (
    NoProviderLeft,
    ServerRefused,
    TargetFailed,
    UploadError,
    describe_network_error,
    message_of,
)
from stremora_client.progress import progress_for
from stremora_client.resume import ResumeState, upload_key
from stremora_client.transfer import SENDERS

API_TIMEOUT = (10, 60)  # seconds: to connect, then between bytes of the answer
GONE = (404, 410)  # an upload the server no longer knows, or that expired
# Asking whether the server has completed an upload: every COMPLETION_POLL seconds for
# the first COMPLETION_QUICK seconds (S3 joins a large upload's parts in a second or
# two, and a question costs the server a few milliseconds, so a late answer would cost
# more than the questions), then each time half as long again, at most
# COMPLETION_POLL_MAX apart, for at most COMPLETION_WAIT seconds in all.
COMPLETION_POLL = 0.2
COMPLETION_QUICK = 3.0
COMPLETION_POLL_MAX = 1.0
COMPLETION_WAIT = 15 * 60
# A server that can tell says after how many seconds to ask again ("retry_after" in
# its answers, or the 202's Retry-After): the client then waits that long instead, at
# most COMPLETION_HINT_MAX seconds.
COMPLETION_HINT_MAX = 60
# A start answered 503 with a short Retry-After (the server busy waiting on its
# providers for other uploads) is asked again after that long, for at most START_WAIT
# seconds in all. A longer one (no provider takes uploads until its breaker's cool-down
# ends) is an outage: it is reported at once, with the time to try again.
START_RETRY_MAX = 10
START_WAIT = 120


def completion_poll_delays():
    """The pauses before each question while the server completes an upload, when it
    does not say how long to wait."""
    waited, delay = 0.0, COMPLETION_POLL
    while waited < COMPLETION_WAIT:
        yield delay
        waited += delay
        if waited >= COMPLETION_QUICK:
            delay = min(delay * 1.5, COMPLETION_POLL_MAX)


class Client:
    """Stremora's upload API at ``url`` for the user whose API token is ``token``.

        client = Client("https://videos.example.com", token)
        video = client.upload("harbour.mp4", title="Harbour")
    """

    def __init__(self, url, token, *, state=None):
        self.url = url.rstrip("/")
        self._token = (token or "").strip()
        if not self._token or len(self._token.split()) != 1:
            raise UploadError("The API token must be one word (the key that POST /api/auth/token/ gives)")
        self.state = state if state is not None else ResumeState()
        self._session = requests.Session()
        self._session.headers.update(self.auth_headers())

    def __repr__(self):
        return f"Client({self.url!r})"  # never the token

    def auth_headers(self):
        return {"Authorization": f"Token {self._token}"}

    # The API, one method a call.

    def start_upload(self, filename, size, content_type, part_checksum="crc32"):
        """``POST /api/uploads/``, asked again while the server says it is briefly busy."""
        waited = 0.0
        while True:
            try:
                return self._call(
                    "POST", "/api/uploads/",
                    {"filename": filename, "size": size, "content_type": content_type, "part_checksum": part_checksum},
                )
            except ServerRefused as refusal:
                wait = retry_after_seconds(refusal)
                if wait is None or wait > START_RETRY_MAX or waited + wait > START_WAIT:
                    raise
            # A little more than asked, different for each client: the clients refused
            # together do not all come back in the same instant.
            wait += random.uniform(0, 0.5)
            time.sleep(wait)
            waited += wait

    def describe_upload(self, upload_id):
        return self._call("GET", f"/api/uploads/{upload_id}/")

    def sign_parts(self, upload_id, numbers, checksums=None):
        """Presigned URLs of the parts ``numbers``; with ``checksums`` (each part's CRC32,
        in order) each URL takes its part only with that CRC32."""
        request = {"numbers": list(numbers), **({"checksums": list(checksums)} if checksums else {})}
        return self._call("POST", f"/api/uploads/{upload_id}/parts/", request)["parts"]

    def fail_upload(self, upload_id, reason):
        return self._call("POST", f"/api/uploads/{upload_id}/fail/", {"reason": reason})

    def complete_upload(self, upload_id, **report):
        """``complete/``; the server checks and completes the upload in the background
        (``Prefer: respond-async``), and this waits for it. Returns the video."""
        response = self._request(
            "POST", f"/api/uploads/{upload_id}/complete/", report, headers={"Prefer": "respond-async"}
        )
        answer = json_of(response)
        if answer.get("status") != "completing":
            return answer  # a server that completed it in the request answered with the video
        return self.await_completion(upload_id, retry_after=retry_after_of(answer, response))

    def await_completion(self, upload_id, retry_after=None):
        """The video an upload being completed becomes; ServerRefused when its check failed.
        ``retry_after``: the seconds the server said to wait before asking."""
        deadline = time.monotonic() + COMPLETION_WAIT
        schedule = completion_poll_delays()
        while time.monotonic() < deadline:
            if retry_after is not None:
                time.sleep(min(retry_after, COMPLETION_HINT_MAX))
            else:
                time.sleep(next(schedule, COMPLETION_POLL_MAX))
            upload = self.describe_upload(upload_id)
            retry_after = retry_after_of(upload)
            if upload["status"] == "completed":
                # A server older than "completed_video" names the video only.
                return upload.get("completed_video") or self.video(upload["video"])
            if upload["status"] != "completing":
                error = upload.get("error") or {"status": 409, "detail": f"The upload is {upload['status']}."}
                raise ServerRefused(error["detail"], error["status"])
        raise UploadError("The server is still completing the upload; run the same command with --resume later")

    def abandon_upload(self, upload_id):
        self._call("DELETE", f"/api/uploads/{upload_id}/")

    def video(self, video_id):
        return self._call("GET", f"/api/videos/{video_id}/")

    def _call(self, method, path, payload=None, headers=None):
        """The JSON of the server's answer; ServerRefused for an error, UploadError when
        it cannot be reached."""
        return json_of(self._request(method, path, payload, headers))

    def _request(self, method, path, payload=None, headers=None):
        url = self.url + path
        try:
            response = self._session.request(method, url, json=payload, headers=headers, timeout=API_TIMEOUT)
        except requests.RequestException as error:
            raise UploadError(f"Stremora could not be reached: {describe_network_error(error, url)}") from None
        if response.status_code >= 400:
            retry_after = response.headers.get("Retry-After")
            message = message_of(response) + (f" (retry after {retry_after} s)" if retry_after else "")
            raise ServerRefused(message, response.status_code, retry_after)
        return response

    # The whole upload.

    def upload(self, path, *, title, description="", is_published=False, video=None, resume=False, progress=True,
               parallel=4):
        """Upload the file at ``path`` straight to the provider Stremora picks, then make
        it a video (or, with ``video=ID``, that video's new file); returns the video as
        ``/api/videos/`` shows it. Raises UploadError with a one-line message."""
        path = os.fspath(path)
        try:
            size = os.path.getsize(path)
        except OSError as error:
            raise UploadError(f"Cannot read {path}: {error.strerror}") from None
        if size == 0:
            raise UploadError(f"{path} is empty")
        if video is not None:
            self.video(video)  # a wrong id is said before any byte is sent
        key = upload_key(self.url, path)
        upload = self._resumed(key) if resume else None
        if upload is not None and upload.get("status") == "completed" and upload.get("video"):
            self.state.forget(key)
            return upload.get("completed_video") or self.video(upload["video"])
        if upload is not None and upload.get("status") == "completing":
            video_answer = self.await_completion(upload["id"], retry_after=retry_after_of(upload))
            self.state.forget(key)
            return video_answer
        if upload is None:
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            upload = self.start_upload(os.path.basename(path), size, content_type)
            self.state.remember(key, upload["id"])

        bar = progress_for(progress, size)
        try:
            report = self._send(upload, path, size, bar, parallel)
        except NoProviderLeft:
            self.state.forget(key)  # abandoned: nothing left to resume
            raise
        finally:
            bar.finish()

        fields = {"title": title, "description": description, "is_published": is_published, **report}
        if video is not None:
            fields["video"] = video
        try:
            result = self.complete_upload(upload["id"], **fields)
        except ServerRefused as refusal:
            if refusal.status < 500:
                self.state.forget(key)  # refused for good: the server removed what was sent
            raise
        self.state.forget(key)
        return result

    def _resumed(self, key):
        """The upload remembered for ``key`` as the server has it now, or None when
        there is none or the server no longer knows it (expired, abandoned)."""
        upload_id = self.state.upload_id(key)
        if upload_id is None:
            return None
        try:
            upload = self.describe_upload(upload_id)
        except ServerRefused as refusal:
            if refusal.status not in GONE:
                raise
            upload = None
        if upload is None or upload.get("status") not in ("uploading", "completing", "completed"):
            self.state.forget(key)
            return None
        return upload

    def _send(self, upload, path, size, progress, parallel):
        """Send the bytes to the upload's target, moving to the next provider each time
        a target fails; returns what ``complete/`` needs to hear of them."""
        while True:
            method = upload["target"]["method"]
            if method not in SENDERS:
                raise UploadError(f"This client cannot send to a {method!r} target")
            sender = SENDERS[method](self, upload, path, size, progress, parallel)
            progress.restart(sender.prepare(upload))
            try:
                return sender.send()
            except TargetFailed as failure:
                upload = self._fail_over(upload, failure.reason)

    def _fail_over(self, upload, reason):
        provider = upload.get("provider", "the provider")
        try:
            return self.fail_upload(upload["id"], f"{provider}: {reason}")
        except ServerRefused as refusal:
            if refusal.status != 503:
                raise
            try:
                self.abandon_upload(upload["id"])  # the server removes what the last provider holds
            except UploadError:
                pass
            retry = f"; try again in {refusal.retry_after} s" if refusal.retry_after else ""
            raise NoProviderLeft(f"No storage provider could take the upload ({provider}: {reason}){retry}") from None


def json_of(response):
    if response.status_code == 204:
        return {}
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise UploadError(
            f"Stremora answered {request.method} {request.path_url} with something that is not JSON"
        ) from None


def retry_after_of(answer, response=None):
    """The seconds the server said to wait before asking again: the answer's precise
    ``retry_after``, else the response's ``Retry-After``; None when it did not say."""
    seconds = answer.get("retry_after")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 <= seconds < float("inf"):
        return float(seconds)
    return delay_seconds(response.headers.get("Retry-After")) if response is not None else None


def delay_seconds(retry_after):
    """The seconds a ``Retry-After`` value asks for, or None (none, or a date)."""
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def retry_after_seconds(refusal):
    """The seconds a 503's ``Retry-After`` asks for, or None (another error, or a date)."""
    return delay_seconds(refusal.retry_after) if refusal.status == 503 else None


def upload(path, *, url, token, title, description="", is_published=False, video=None, resume=False, progress=True,
           parallel=4, state=None):
    """Upload the video file at ``path`` to the Stremora server at ``url``; see
    ``Client.upload``. ``state``: a ``ResumeState`` other than the user's cache file."""
    return Client(url, token, state=state).upload(
        path, title=title, description=description, is_published=is_published, video=video, resume=resume,
        progress=progress, parallel=parallel,
    )
