"""A client for Janus's HTTP API and its Streaming plugin: mountpoints fed with plain RTP by a stage
worker, and WebRTC viewers that watch them (Janus offers, the viewer answers).

Synchronous (httpx), safe to share between threads, and free of Django: the caller passes the
settings (JANUS_URL, JANUS_ADMIN_KEY). Mountpoint management goes through one control session and
handle that the client opens when first needed and opens again when Janus no longer knows them
(its 60 s session timeout, or a restarted Janus). Each viewer gets a session and handle of its own
from `watch`; whoever holds them must call `keepalive` (or `poll_events`) more often than Janus's
session timeout and `destroy_session` when the viewer leaves.

Janus answers a request with `success` (synchronous, e.g. `create`, `info`), `ack` (asynchronous:
the result comes later as an `event` on the session's long-poll, e.g. `watch`, `start`) or `error`.
A plugin refusal is a `success` whose plugin data carries `error_code` and `error`; both kinds of
refusal raise JanusError with Janus's code and reason.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import httpx

from sessions_app.errors import JanusError, JanusUnavailable

STREAMING = "janus.plugin.streaming"

# Janus core error codes (janus/apierror.h) and Streaming plugin codes this client acts on.
SESSION_NOT_FOUND = 458
HANDLE_NOT_FOUND = 459
NO_SUCH_MOUNTPOINT = 455
# How long Janus holds a long-poll GET open when it has no event (its HTTP transport's fixed 30 s).
_JANUS_LONG_POLL_S = 30.0

# RTP formats the stage workers send (sessions_app/live/rtp.py): the payload types are what Janus
# expects on its RTP inputs and what it puts in the offer.
VIDEO_PT = 96  # VP8, 90 kHz clock
AUDIO_PT = 111  # Opus, 48 kHz, 2 channels in SDP (RFC 7587) even for mono


def _transaction() -> str:
    return secrets.token_hex(8)


class JanusClient:
    def __init__(self, url: str, admin_key: str = "", timeout: float = 10.0):
        if not url:
            raise ValueError("JanusClient needs the Janus API URL (JANUS_URL)")
        self.url = url.rstrip("/")
        self.admin_key = admin_key
        self.timeout = timeout
        # Long-polls hold a connection for up to 30 s: they must not starve the short requests.
        self._http = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=32))
        self._lock = threading.Lock()
        self._control: tuple[int, int] | None = None  # (session, handle) for mountpoint management

    def close(self) -> None:
        with self._lock:
            control, self._control = self._control, None
        if control is not None:
            try:
                self.destroy_session(control[0])
            except (JanusError, JanusUnavailable):
                pass  # gone already: nothing left to release
        self._http.close()

    def __enter__(self) -> JanusClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the Janus core API ----------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        payload = {**payload, "transaction": payload.get("transaction") or _transaction()}
        try:
            response = self._http.post(f"{self.url}{path}", json=payload)
        except httpx.HTTPError as exc:
            raise JanusUnavailable(f"Janus at {self.url} could not be reached for {what}: {exc!r}") from exc
        return self._decode(response, what)

    @staticmethod
    def _decode(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise JanusUnavailable(
                f"Janus answered {what} with HTTP {response.status_code} and no JSON: {response.text[:200]!r}"
            ) from exc
        if not isinstance(body, dict) or "janus" not in body:
            raise JanusUnavailable(f"Janus answered {what} with something that is not its API: {body!r:.200}")
        if body["janus"] == "error":
            error = body.get("error") or {}
            raise JanusError(error.get("code"), error.get("reason", "unknown error"), what)
        return body

    def info(self) -> dict[str, Any]:
        """GET /info: the server's version, plugins and transports."""
        try:
            response = self._http.get(f"{self.url}/info")
        except httpx.HTTPError as exc:
            raise JanusUnavailable(f"Janus at {self.url} could not be reached: {exc!r}") from exc
        return self._decode(response, "info")

    def create_session(self) -> int:
        return int(self._post("", {"janus": "create"}, "create")["data"]["id"])

    def attach(self, session_id: int, plugin: str = STREAMING) -> int:
        body = self._post(f"/{session_id}", {"janus": "attach", "plugin": plugin}, "attach")
        return int(body["data"]["id"])

    def keepalive(self, session_id: int) -> None:
        self._post(f"/{session_id}", {"janus": "keepalive"}, "keepalive")

    def destroy_session(self, session_id: int) -> None:
        self._post(f"/{session_id}", {"janus": "destroy"}, "destroy")

    def poll_events(self, session_id: int, timeout_s: float = _JANUS_LONG_POLL_S) -> list[dict[str, Any]]:
        """The session's pending events (a GET long-poll). Janus answers at once when events wait,
        else when one arrives, else after its own 30 s with a `keepalive`. Polls again until an
        event arrives or `timeout_s` has passed; returns [] then. Each GET also keeps the session
        alive. A GET is never abandoned half-way (an event Janus was sending on it would be lost),
        so this may return up to 30 s after `timeout_s` when Janus is quiet."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = self._http.get(
                    f"{self.url}/{session_id}",
                    params={"maxev": 10, "rid": int(time.time() * 1000)},
                    timeout=httpx.Timeout(self.timeout, read=_JANUS_LONG_POLL_S + self.timeout),
                )
            except httpx.HTTPError as exc:
                raise JanusUnavailable(f"Janus at {self.url} could not be reached for events: {exc!r}") from exc
            try:
                body = response.json()
            except ValueError as exc:
                raise JanusUnavailable(f"Janus answered a long-poll with HTTP {response.status_code}") from exc
            events = body if isinstance(body, list) else [body]
            for event in events:
                if isinstance(event, dict) and event.get("janus") == "error":
                    error = event.get("error") or {}
                    raise JanusError(error.get("code"), error.get("reason", "unknown error"), "events")
            events = [e for e in events if isinstance(e, dict) and e.get("janus") != "keepalive"]
            if events or time.monotonic() >= deadline:
                return events

    def message(self, session_id: int, handle_id: int, body: dict[str, Any],
                jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a plugin request. Returns Janus's whole reply: `success` with `plugindata` for a
        synchronous request, `ack` for an asynchronous one. A plugin refusal raises JanusError."""
        payload: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            payload["jsep"] = jsep
        what = str(body.get("request", "message"))
        reply = self._post(f"/{session_id}/{handle_id}", payload, what)
        _raise_plugin_error(reply, what)
        return reply

    # --- mountpoint management (the control session) ------------------------------------------

    def _control_handle(self) -> tuple[int, int]:
        with self._lock:
            if self._control is None:
                session = self.create_session()
                self._control = (session, self.attach(session))
            return self._control

    def _manage(self, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous Streaming request on the control handle; its plugin data. The control
        session is opened again once when Janus no longer knows it (timed out, Janus restarted)."""
        for attempt in (1, 2):
            session, handle = self._control_handle()
            try:
                reply = self.message(session, handle, body)
            except JanusError as exc:
                if attempt == 1 and exc.code in (SESSION_NOT_FOUND, HANDLE_NOT_FOUND):
                    with self._lock:
                        if self._control == (session, handle):
                            self._control = None
                    continue
                raise
            return reply.get("plugindata", {}).get("data", {})
        raise AssertionError("unreachable")

    def create_mountpoint(self, mountpoint_id: int, name: str, video: bool = True, audio: bool = True,
                          data: bool = True) -> dict[str, int]:
        """An RTP mountpoint whose inputs Janus binds on ports it picks (port 0, from the Streaming
        plugin's rtp_port_range). Returns {"video", "video_rtcp", "audio", "data": port} for the
        streams asked for. The mountpoint's secret is the admin key, so only key holders can see
        its ports or destroy it.

        A new viewer gets a picture at once through the video RTCP port: Janus sends the source a
        PLI there when a viewer starts (and relays viewers' PLIs), and RtpPublisher answers with a
        keyframe (measured: the viewer's first picture 0.1 s after `start`). Janus's own keyframe
        buffer (`videobufferkf`) is left off: it hands a joining viewer a keyframe up to 2 s old
        followed by live frames that reference pictures it never had, which a decoder that does
        not check VP8 picture ids (aiortc's) shows as a smeared picture until the next keyframe;
        and in Janus 1.1.2 it works only with this single-stream form of `create`."""
        if not (video or audio or data):
            raise ValueError("a mountpoint needs at least one of video, audio, data")
        # The single-stream form of `create` (audio*/video*/data* fields, which Janus answers with
        # a "deprecated_api" warning): it is the one that returns the RTCP port it picked.
        body: dict[str, Any] = {
            "request": "create", "admin_key": self.admin_key, "type": "rtp", "id": int(mountpoint_id),
            "name": name, "description": name, "secret": self.admin_key, "is_private": False,
            "permanent": False, "video": bool(video), "audio": bool(audio), "data": bool(data),
        }
        if video:
            body.update(videoport=0, videortcpport=0, videopt=VIDEO_PT, videocodec="vp8", videortpmap="VP8/90000")
        if audio:
            body.update(audioport=0, audiopt=AUDIO_PT, audiocodec="opus", audiortpmap="opus/48000/2")
        if data:
            body.update(dataport=0, datatype="text")
        stream = self._manage(body).get("stream", {})
        ports = {kind: int(stream[f"{kind}_port"])
                 for kind in ("video", "video_rtcp", "audio", "data") if stream.get(f"{kind}_port")}
        wanted = {"video": video, "video_rtcp": video, "audio": audio, "data": data}
        missing = {kind for kind, asked in wanted.items() if asked} - set(ports)
        if missing:
            raise JanusError(None, f"created mountpoint {mountpoint_id} but got no port for {sorted(missing)}: "
                                   f"{stream!r:.300}", "create")
        return ports

    def destroy_mountpoint(self, mountpoint_id: int) -> None:
        self._manage({"request": "destroy", "id": int(mountpoint_id), "secret": self.admin_key, "permanent": False})

    def mountpoint_info(self, mountpoint_id: int) -> dict[str, Any]:
        """Janus's `info` for the mountpoint: name, enabled, `viewers` (count), `media` (each stream's
        mid, type, port, pt, codec and age_ms, the time since it last received media)."""
        return self._manage({"request": "info", "id": int(mountpoint_id), "secret": self.admin_key})["info"]

    def mountpoint_exists(self, mountpoint_id: int) -> bool:
        try:
            self.mountpoint_info(mountpoint_id)
        except JanusError as exc:
            if exc.code == NO_SUCH_MOUNTPOINT:
                return False
            raise
        return True

    def list_mountpoints(self) -> list[dict[str, Any]]:
        return list(self._manage({"request": "list"}).get("list", []))

    # --- viewers ------------------------------------------------------------------------------

    def _await_event(self, session_id: int, handle_id: int, what: str, timeout_s: float) -> dict[str, Any]:
        """The next plugin event for the handle (the outcome of an asynchronous request)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JanusError(None, f"no answer to {what} within {timeout_s:.0f} s", what)
            for event in self.poll_events(session_id, timeout_s=left):
                if event.get("sender") not in (None, handle_id):
                    continue
                if event.get("janus") == "hangup":
                    raise JanusError(None, f"Janus hung up during {what}: {event.get('reason', '')}", what)
                if event.get("janus") != "event":
                    continue  # webrtcup, media, slowlink: not the outcome asked for
                _raise_plugin_error(event, what)
                return event

    def watch(self, mountpoint_id: int, timeout_s: float | None = None) -> tuple[int, int, str]:
        """A viewer for the mountpoint: a new Janus session and handle, and Janus's SDP offer (its
        ICE candidates included) for the viewer to answer with `start`. The session is the
        caller's: keep it alive, destroy it when the viewer leaves."""
        timeout_s = self.timeout if timeout_s is None else timeout_s
        session = self.create_session()
        try:
            handle = self.attach(session)
            self.message(session, handle, {"request": "watch", "id": int(mountpoint_id)})
            # `watch` is asynchronous: an ack now, the offer as an event on the long-poll.
            while True:
                event = self._await_event(session, handle, "watch", timeout_s)
                jsep = event.get("jsep")
                if jsep and jsep.get("type") == "offer":
                    return session, handle, jsep["sdp"]
        except BaseException:
            try:
                self.destroy_session(session)
            except (JanusError, JanusUnavailable):
                pass  # the session goes with Janus's timeout
            raise

    def start(self, janus_session_id: int, handle_id: int, answer_sdp: str, timeout_s: float | None = None) -> None:
        """Send the viewer's answer; returns once the plugin says the playout is starting."""
        timeout_s = self.timeout if timeout_s is None else timeout_s
        self.message(janus_session_id, handle_id, {"request": "start"}, jsep={"type": "answer", "sdp": answer_sdp})
        while True:
            event = self._await_event(janus_session_id, handle_id, "start", timeout_s)
            result = event.get("plugindata", {}).get("data", {}).get("result", {})
            if result.get("status") in ("starting", "started"):
                return


def _raise_plugin_error(reply: dict[str, Any], what: str) -> None:
    data = reply.get("plugindata", {}).get("data", {})
    if isinstance(data, dict) and "error_code" in data:
        raise JanusError(data.get("error_code"), str(data.get("error", "unknown error")), what)
