"""Settings for the avatar backend.

Every setting an operator may change is read from an environment variable, with an embedded
default that needs nothing beyond the pip packages: SQLite, the in-memory channel layer and local
files under DATA_DIR. The README lists them all.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

# FFmpeg inside OpenCV complains on stderr about every damaged upload; the refusal says enough.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.replace(os.pathsep, ",").split(",") if item.strip()]


# All mutable state of the embedded default lives here: database, sources, prepared avatars.
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """The key from the environment, or one generated once and kept in the data folder."""
    from_env = os.environ.get("DJANGO_SECRET_KEY")
    if from_env:
        return from_env
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Production behind an HTTPS proxy (DJANGO_HTTPS=true): secure cookies, redirects, HSTS.
# `manage.py check --deploy` passes with it (a test runs that check).
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^health$"]  # load balancers probe over plain HTTP
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI files served locally: the docs work offline
    "channels",
    # Before the apps whose signals it hears: its receivers run first, so an event is handed to
    # delivery before the events it causes (avatar.ready before the tutor.avatar_switched it leads to).
    "webhooks",
    "tutors",
    "avatars",
    "sessions_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "common.login_throttle.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tutorplatform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "tutorplatform.wsgi.application"
ASGI_APPLICATION = "tutorplatform.asgi.application"

def database_from_url(url: str) -> dict:
    """DATABASE_URL (postgres://user:password@host:port/name) as a Django database setting."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL: only postgres:// is supported, not {parts.scheme}://")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    # SQLite in WAL mode: the worker threads write progress while requests read. IMMEDIATE
    # transactions plus a busy timeout make writers queue instead of failing with "database is locked".
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
            # A file, not SQLite's in-memory default: worker threads open their own connections.
            "TEST": {"NAME": str(DATA_DIR / "test-db.sqlite3")},
        }
    }

# REDIS_URL selects the Redis channel layer, so progress reaches browsers connected to any server
# process; the default in-memory layer serves one process.
if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 waits 5 s for any reply by default, and the layer's blocking read of a
            # socket's messages waits 5 s too: a socket that heard nothing for 5 s (a session's
            # stream, a progress socket during a long step) failed with "Timeout reading".
            "CONFIG": {"hosts": [{"address": os.environ["REDIS_URL"], "socket_timeout": 30}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# The embedded default has no separate web server for static files; Django serves them itself.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies and uploads past 64 KB go to temporary files, not memory. (Not 0: under ASGI,
# Django spools the body with this as the limit, and 0 means "never roll over to disk".)
FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    # Django's, with the client's file name shortened first: a 300-character extension would
    # otherwise become the temporary file's name and fail the request with a 500.
    "avatars.uploads.ShortNameTemporaryFileUploadHandler",
]
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# How WebSocket access finds an API key (common/socket_auth.py): key -> the key's row, or None.
API_KEY_LOOKUP = "avatars.authentication.find_active_key"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a request with no credentials gets 401 (with WWW-Authenticate), not 403.
        "avatars.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["avatars.permissions.IsApiClient"],
    "EXCEPTION_HANDLER": "common.api_errors.contract_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tutor avatar API",
    "DESCRIPTION": "Tutors, their avatars and tutoring sessions. The whole HTTP and WebSocket contract, "
                   "with the live sockets' messages: [/docs/api.md](/docs/api.md).",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AvatarStateEnum": "avatars.models.AvatarState",
        "SessionStateEnum": "sessions_app.models.SessionState",
    },
}

# Messages live in the session, not in a cookie: one of them shows a newly created API key.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# After logging in without a usable ?next=, the staff pages (Django's default is a 404).
LOGIN_REDIRECT_URL = "/staff/"
# Wrong passwords: this many in a row lock the address and the user name out for LOGIN_LOCKOUT_S.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_S = env_int("LOGIN_LOCKOUT_S", 900)

# Every app's lines and Django's own errors go to stderr. Django's default sends a 500's
# traceback ("django.request") to the console only with DEBUG on, and to admins by mail: in
# production a 500 said "the error was logged" and nothing was written anywhere.
_APP_LOG = {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"level": "ERROR"},  # a 500's traceback, not a line per 4xx (the access log has those)
        **{app: _APP_LOG for app in ("avatars", "sessions_app", "tutors", "tutorplatform", "common")},
    },
}

# --- The avatar service ----------------------------------------------------------------------

APP_VERSION = "0.1.0"

# Where prepared avatars are published (avatar_path = AVATAR_ROOT/<avatar_id>), and where runs work
# before they are published: the same filesystem, so that publishing is one atomic rename.
AVATAR_ROOT = Path(env_str("AVATAR_ROOT", str(DATA_DIR / "avatars"))).resolve()
AVATAR_WORK_DIR = Path(env_str("AVATAR_WORK_DIR", str(DATA_DIR / "work"))).resolve()

# Object storage (S3 or compatible) for source videos and prepared avatars; empty: local files.
AVATAR_S3_BUCKET = env_str("AVATAR_S3_BUCKET", "")


def s3_storages(bucket: str, endpoint_url: str | None, access_key: str | None, secret_key: str | None,
                region: str | None) -> dict:
    """Django's STORAGES with the default storage on an S3-compatible object store."""
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint_url,
                "access_key": access_key,
                "secret_key": secret_key,
                "region_name": region,
                "file_overwrite": True,  # a reprocessed avatar replaces its files
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


if AVATAR_S3_BUCKET:
    STORAGES = s3_storages(
        AVATAR_S3_BUCKET,
        env_str("AVATAR_S3_ENDPOINT_URL", "") or None,
        env_str("AVATAR_S3_ACCESS_KEY_ID", "") or None,
        env_str("AVATAR_S3_SECRET_ACCESS_KEY", "") or None,
        env_str("AVATAR_S3_REGION", "") or None,
    )

# POST /v1/avatars may only read videos inside these folders (after following links).
AVATAR_IMPORT_DIRS = [Path(p).resolve() for p in env_list("AVATAR_IMPORT_DIRS", [str(DATA_DIR / "import")])]

# Who runs the jobs: "threads" (a pool in the server process, the default) or "celery" (worker
# processes on any machine, started with `celery -A tutorplatform worker`; needs a broker).
AVATAR_JOB_QUEUE = env_str("AVATAR_JOB_QUEUE", "threads")
AVATAR_CELERY_APP = "tutorplatform.celery.app"  # the Celery application the celery backend sends through
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", os.environ.get("REDIS_URL", ""))
CELERY_TASK_ACKS_LATE = True  # a job whose worker dies goes back to the queue
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # one job at a time per worker slot: long jobs, fair spread
# How long a job taken by a worker that vanished stays invisible before another worker gets it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("AVATAR_JOB_VISIBILITY_TIMEOUT_S", 3600)}
AVATAR_WORKERS = env_int("AVATAR_WORKERS", 1)
# Run each preparation in a child process at low priority, so it cannot slow the API down.
AVATAR_JOB_IN_CHILD_PROCESS = env_bool("AVATAR_JOB_IN_CHILD_PROCESS", True)
# That child's priority: a niceness (0-19) under SCHED_BATCH, which keeps a share of the CPU
# however busy the machine is, or "idle" (SCHED_IDLE: only CPU time nothing else wants; it starves
# when other processes keep the cores busy). Measured with both cores busy elsewhere: niceness 10
# kept 0.15 of its quiet speed (15: 0.05, idle: under 0.02), and the API's p99 while a job ran
# was 1.35-1.46x idle (bench/priority_bench.py, bench/load_bench.py).
AVATAR_JOB_PRIORITY = env_str("AVATAR_JOB_PRIORITY", "10")
# Jobs waiting beyond the running ones; past it, creates answer 503 queue_full.
AVATAR_QUEUE_LIMIT = env_int("AVATAR_QUEUE_LIMIT", 16)
# Re-queue jobs a crash left queued/processing when the server starts.
AVATAR_REQUEUE_ON_START = env_bool("AVATAR_REQUEUE_ON_START", True)
# At shutdown, how long running jobs get to stop (they go back to the queue; the next start runs them).
AVATAR_JOB_STOP_WAIT_S = env_float("AVATAR_JOB_STOP_WAIT_S", 10.0)

AVATAR_MAX_UPLOAD_BYTES = env_int("AVATAR_MAX_UPLOAD_BYTES", 500 * 1024 * 1024)
# A video_path file changed less than this long ago is watched that long before it is taken: one
# still being written (a recorder's MKV) is refused rather than prepared from what exists so far.
AVATAR_IMPORT_SETTLE_S = env_float("AVATAR_IMPORT_SETTLE_S", 2.0)
# An avatar whose prepared files are more than this many times its video's size says so in its
# `warnings` (from the 201 on): a still 1 MB 1080p clip made 1.58 GB of frames. Typical
# talking-head clips make 15-60 times their size.
AVATAR_OUTPUT_WARN_RATIO = env_float("AVATAR_OUTPUT_WARN_RATIO", 200.0)
# What one prepared avatar may take on disk (0: no limit). The input limits alone let a still
# 1080p clip of 1 MB expand to ~8 GB of frames; 4 GB holds 5 minutes of 720p at 25 fps.
AVATAR_MAX_OUTPUT_BYTES = env_int("AVATAR_MAX_OUTPUT_BYTES", 4 * 1024**3)
AVATAR_MIN_DURATION_S = env_float("AVATAR_MIN_DURATION_S", 1.0)
AVATAR_MAX_DURATION_S = env_float("AVATAR_MAX_DURATION_S", 300.0)
AVATAR_MIN_SHORT_SIDE = env_int("AVATAR_MIN_SHORT_SIDE", 240)
AVATAR_MAX_LONG_SIDE = env_int("AVATAR_MAX_LONG_SIDE", 4096)
AVATAR_MAX_TOTAL_PIXELS = env_int("AVATAR_MAX_TOTAL_PIXELS", 1920 * 1080 * 30 * 300)
# Share of frames that must show a face, and the smallest face (the detector's box, brow to chin)
# in source pixels: 96 makes a head crop of ~170 pixels, scaled up at most ~1.5x to 256.
AVATAR_MIN_FACE_RATIO = env_float("AVATAR_MIN_FACE_RATIO", 0.9)
AVATAR_MIN_FACE_PX = env_float("AVATAR_MIN_FACE_PX", 96.0)
# A second face in more than this share of the whole-frame searches fails the job (multiple_faces).
AVATAR_MAX_MULTIPLE_FACES_RATIO = env_float("AVATAR_MAX_MULTIPLE_FACES_RATIO", 0.5)

AVATAR_CROP_SIZE = env_int("AVATAR_CROP_SIZE", 256)
AVATAR_FRAME_FORMAT = env_str("AVATAR_FRAME_FORMAT", "jpg")  # "jpg" or "png"
AVATAR_JPEG_QUALITY = env_int("AVATAR_JPEG_QUALITY", 95)
# Search for the face near its last place every k-th frame (the whole frame every 2 s, and on
# every frame while the face is lost).
AVATAR_DETECT_EVERY = env_int("AVATAR_DETECT_EVERY", 5)
# The face detector: "yunet" (a CNN compiled into the yuface wheel) or "haar" (OpenCV's cascade,
# a fallback that misses turned and tilted faces).
AVATAR_FACE_DETECTOR = env_str("AVATAR_FACE_DETECTOR", "yunet")
# A YuNet ONNX file to run through OpenCV instead of the compiled-in model; empty: the wheel's.
AVATAR_FACE_MODEL = env_str("AVATAR_FACE_MODEL", "")

# --- The server process (tutorplatform/server.py) ----------------------------------------------

# A kept-alive connection with no next request is closed after this long.
SERVER_KEEP_ALIVE_S = env_int("SERVER_KEEP_ALIVE_S", 5)
# A request's line and headers must arrive within this long of its first byte (slow clients).
SERVER_REQUEST_HEAD_TIMEOUT_S = env_float("SERVER_REQUEST_HEAD_TIMEOUT_S", 10.0)
# A request body that stops arriving for this long is answered 408 request_timeout.
SERVER_BODY_IDLE_TIMEOUT_S = env_float("SERVER_BODY_IDLE_TIMEOUT_S", 30.0)
# A body that keeps arriving, but slower than this on average (bytes a second, after a grace of
# SERVER_BODY_GRACE_S spent waiting for it), is answered 408 too: Apache's mod_reqtimeout
# default (body=20,MinRate=500). A body trickled a byte every 2 s held a worker for good.
SERVER_BODY_MIN_RATE_BYTES_S = env_int("SERVER_BODY_MIN_RATE_BYTES_S", 500)
SERVER_BODY_GRACE_S = env_float("SERVER_BODY_GRACE_S", 20.0)
# A WebSocket whose writes stay blocked this long (its client stopped reading) is dropped.
SERVER_WS_SEND_STALL_S = env_float("SERVER_WS_SEND_STALL_S", 10.0)
# After SIGTERM, requests in flight get this long to finish; then jobs get AVATAR_JOB_STOP_WAIT_S.
# The two together (25 s) stay inside the usual 30 s a container manager waits before SIGKILL.
SERVER_GRACEFUL_SHUTDOWN_S = env_int("SERVER_GRACEFUL_SHUTDOWN_S", 15)
# Proxies whose X-Forwarded-For / X-Forwarded-Proto headers are believed ("*": any).
SERVER_FORWARDED_ALLOW_IPS = env_str("SERVER_FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Tutors -----------------------------------------------------------------------------------

# When a tutor switches to a new avatar, keep the one it replaces (default: delete it, with its files).
TUTOR_KEEP_REPLACED_AVATARS = env_bool("TUTOR_KEEP_REPLACED_AVATARS", False)

# --- Tutoring sessions ------------------------------------------------------------------------

# Active sessions this server streams at once; past it, POST /v1/sessions answers 429 session_limit.
SESSION_MAX_ACTIVE = env_int("SESSION_MAX_ACTIVE", 8)
# A session with no request and no viewer for this long ends by itself.
SESSION_IDLE_TIMEOUT_S = env_int("SESSION_IDLE_TIMEOUT_S", 600)
# Let the server end idle sessions once a minute by itself (they also end when the API is asked).
SESSION_IDLE_SWEEP = env_bool("SESSION_IDLE_SWEEP", True)
# Streams one session may have open at once in one server process (past it: close code 4429).
SESSION_MAX_VIEWERS = env_int("SESSION_MAX_VIEWERS", 4)
# Memory for encoded frames shared by all viewers (all avatars together), in MB.
SESSION_FRAME_CACHE_MB = env_int("SESSION_FRAME_CACHE_MB", 256)

# --- Speaking sessions (POST /v1/sessions/{id}/speak) ------------------------------------------

# The voice that speaks text: a dotted path to a Voice class (sessions_app/speech/voices.py).
SESSION_VOICE = env_str("SESSION_VOICE", "sessions_app.speech.voices.JoePiperVoice")
# For SESSION_VOICE=sessions_app.speech.voices.PiperVoiceFile: the Piper voice's .onnx file.
SESSION_VOICE_MODEL = env_str("SESSION_VOICE_MODEL", "")
# What draws a speaking frame: a dotted path to a FrameRenderer class (sessions_app/speech/renderer.py).
# The default speaks with the tutor's own recorded mouth (speech/mouth_samples.py) and falls back to
# the animator (speech/renderer.py MouthAnimator) for avatars without usable lip shapes.
SESSION_RENDERER = env_str("SESSION_RENDERER", "sessions_app.speech.mouth_samples.MouthSampleRenderer")
# The stream's audio: mono 16-bit PCM at this rate (Hz).
SESSION_AUDIO_RATE = env_int("SESSION_AUDIO_RATE", 24000)
# Longest text one speak request may carry (characters), and longest audio body (seconds).
SESSION_SPEAK_MAX_CHARS = env_int("SESSION_SPEAK_MAX_CHARS", 1000)
SESSION_SPEAK_MAX_AUDIO_S = env_float("SESSION_SPEAK_MAX_AUDIO_S", 120.0)
# An utterance whose text arrives in pieces (speak with "final": false, then append): the most
# characters it may hold in all, and how long it stays open with nothing appended before it is
# closed as it stands (its client went away).
SESSION_SPEAK_MAX_UTTERANCE_CHARS = env_int("SESSION_SPEAK_MAX_UTTERANCE_CHARS", 20000)
SESSION_SPEAK_OPEN_TIMEOUT_S = env_float("SESSION_SPEAK_OPEN_TIMEOUT_S", 30.0)
# Hearing the student (sessions_app/live/listening.py): whether a viewer's microphone audio is heard;
# the speech recogniser (a dotted path to a Recognizer class; empty: no transcripts); whether the
# student talking cuts the tutor (barge-in), after how much speech (coughs are shorter), and the
# silence that ends a student's turn.
SESSION_LISTEN = env_bool("SESSION_LISTEN", True)
SESSION_RECOGNIZER = env_str("SESSION_RECOGNIZER", "sessions_app.speech.hearing.WhisperTinyEn")
SESSION_BARGE_IN = env_bool("SESSION_BARGE_IN", True)
SESSION_BARGE_IN_MIN_SPEECH_S = env_float("SESSION_BARGE_IN_MIN_SPEECH_S", 0.2)
SESSION_LISTEN_END_SILENCE_S = env_float("SESSION_LISTEN_END_SILENCE_S", 0.6)
SESSION_LISTEN_MAX_TURN_S = env_float("SESSION_LISTEN_MAX_TURN_S", 30.0)
# Utterances a session may have waiting to play (past it: 429 speak_queue_full).
SESSION_MAX_QUEUED_UTTERANCES = env_int("SESSION_MAX_QUEUED_UTTERANCES", 8)
# Audio bodies decoded at once in one server process (each holds its body, up to 64 MB, plus
# ~10-40 MB of work), and how long a speak waits for its turn before 503 speak_busy.
SESSION_SPEAK_AUDIO_AT_ONCE = env_int("SESSION_SPEAK_AUDIO_AT_ONCE", 2)
SESSION_SPEAK_AUDIO_WAIT_S = env_float("SESSION_SPEAK_AUDIO_WAIT_S", 5.0)
# Load the voice when the server starts, so the first speak does not wait ~1 s for it.
SESSION_VOICE_PRELOAD = env_bool("SESSION_VOICE_PRELOAD", True)

# --- WebRTC delivery (POST /v1/sessions/{id}/webrtc) ---------------------------------------------

# ICE servers handed to each peer connection, as JSON: a list of {"urls": "stun:..." or
# ["turn:...", ...], "username": ..., "credential": ...}. None are needed on loopback or a LAN;
# over the internet, a STUN server, and a TURN server (coturn, say) for viewers behind NATs that
# cannot reach the server directly. README, "WebRTC delivery".
SESSION_WEBRTC_ICE_SERVERS = json.loads(env_str("SESSION_WEBRTC_ICE_SERVERS", "[]") or "[]")
# The addresses this server offers as its own ICE host candidates: empty = every address of the
# machine but loopback (the WebRTC default); name some to keep media on one interface
# (127.0.0.1 for loopback-only tests and benches, or the LAN address behind a proxy).
SESSION_WEBRTC_HOST_ADDRESSES = env_list("SESSION_WEBRTC_HOST_ADDRESSES", [])
# A peer connection that has not connected this long after its answer is closed (its viewer place freed).
SESSION_WEBRTC_CONNECT_TIMEOUT_S = env_float("SESSION_WEBRTC_CONNECT_TIMEOUT_S", 30.0)
# Longest an offer may take to answer (ICE candidates are gathered before the answer: STUN/TURN).
SESSION_WEBRTC_ANSWER_TIMEOUT_S = env_float("SESSION_WEBRTC_ANSWER_TIMEOUT_S", 15.0)

# --- Live sessions past one machine (README, "Live sessions past one machine") -----------------

# "" (the embedded default): the web process a session's viewers reach runs its stage and answers
# WebRTC offers itself (aiortc). "janus": stages run in stage-worker processes (`manage.py
# stage_worker`), each session's media is encoded once and sent as plain RTP to a Janus Streaming
# mountpoint, and WebRTC viewers get it from Janus (Janus offers, the viewer answers). Needs the
# shared database (PostgreSQL) and the Redis channel layer.
SESSION_MEDIA_SERVER = env_str("SESSION_MEDIA_SERVER", "")
# Janus's HTTP API (http://10.213.0.2:8088/janus), the Streaming plugin's admin_key (needed to
# create mountpoints) and the address the stage workers send RTP to (Janus's own address).
JANUS_URL = env_str("JANUS_URL", "")
JANUS_ADMIN_KEY = env_str("JANUS_ADMIN_KEY", "")
JANUS_RTP_HOST = env_str("JANUS_RTP_HOST", "")
# A stage worker writes its heartbeat this often, and counts as dead (its sessions placed on
# another worker) once its heartbeat is this old: failover in about DEAD_AFTER + one heartbeat.
STAGE_WORKER_HEARTBEAT_S = env_float("STAGE_WORKER_HEARTBEAT_S", 0.5)
STAGE_WORKER_DEAD_AFTER_S = env_float("STAGE_WORKER_DEAD_AFTER_S", 2.0)
STAGE_WORKER_MAX_SESSIONS = env_int("STAGE_WORKER_MAX_SESSIONS", 0)  # 0: no limit
# On SIGTERM a worker lets what its sessions are saying finish (at most this long) before handing
# them over, so a clean stop cuts no sentence.
STAGE_WORKER_HANDOVER_S = env_float("STAGE_WORKER_HANDOVER_S", 20.0)

# --- Webhooks (webhooks/; docs/api.md, "Webhooks") ----------------------------------------------

# Who delivers: "threads" (a pool in the server process) or "celery" (the Celery workers);
# by default the same as AVATAR_JOB_QUEUE.
WEBHOOK_QUEUE = env_str("WEBHOOK_QUEUE", AVATAR_JOB_QUEUE)
# Deliveries in flight at once in one process (the thread pool); one endpoint has at most one.
WEBHOOK_WORKERS = env_int("WEBHOOK_WORKERS", 4)
# One attempt's whole time (connect, send, answer), in seconds.
WEBHOOK_TIMEOUT_S = env_float("WEBHOOK_TIMEOUT_S", 10.0)
# Retries after a timeout, a network error, a 5xx, 408 or 429: waits of BASE, 2*BASE, 4*BASE, ...
# capped at MAX_DELAY, for at most WINDOW after the first attempt (then the delivery fails).
WEBHOOK_RETRY_BASE_S = env_float("WEBHOOK_RETRY_BASE_S", 10.0)
WEBHOOK_RETRY_MAX_DELAY_S = env_float("WEBHOOK_RETRY_MAX_DELAY_S", 3600.0)
WEBHOOK_RETRY_WINDOW_S = env_float("WEBHOOK_RETRY_WINDOW_S", 24 * 3600.0)
# An endpoint whose every attempt failed for this long is disabled (active false, with the reason).
WEBHOOK_DISABLE_AFTER_S = env_float("WEBHOOK_DISABLE_AFTER_S", 24 * 3600.0)
# Longest accepted URL, and how much of a receiver's answer is read (and kept, in part, per attempt).
WEBHOOK_MAX_URL_LENGTH = env_int("WEBHOOK_MAX_URL_LENGTH", 2048)
WEBHOOK_MAX_ANSWER_BYTES = env_int("WEBHOOK_MAX_ANSWER_BYTES", 4096)
# Finished events (with their deliveries and attempts) are deleted after this many days, at start.
WEBHOOK_KEEP_DAYS = env_float("WEBHOOK_KEEP_DAYS", 30.0)
# Allow endpoints on loopback, link-local, private, shared or reserved addresses (tests, a LAN).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
