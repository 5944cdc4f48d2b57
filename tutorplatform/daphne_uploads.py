"""Stop Twisted from parsing upload bodies that daphne never looks at.

Under daphne, Twisted's HTTP request parses every multipart POST body into `request.args`,
reading all of it into memory and copying it several times: measured here, a 100 MB upload
raised the server's peak memory by 1.2 GB. Daphne hands the body to Django unparsed, and Django
streams it to disk; `request.args` is never used. Twisted (22.10+) lets this be switched off per
request, which daphne does not do, so it is done here, once, when the ASGI application loads.
"""

from __future__ import annotations


def stop_form_parsing_in_twisted() -> None:
    try:
        from daphne import http_protocol
    except ImportError:  # served by another ASGI server: nothing to do
        return
    original_init = http_protocol.WebRequest.__init__
    if getattr(original_init, "without_form_parsing", False):
        return

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    __init__.without_form_parsing = True
    http_protocol.WebRequest.__init__ = __init__
