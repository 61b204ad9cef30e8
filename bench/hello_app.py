"""The baseline for bench/public_page.py: a trivial Flask view returning a short HTML string.

Run it under the same gunicorn settings as the portal, e.g.
``gunicorn -w 2 -k sync --pythonpath bench hello_app:app``.
"""

from flask import Flask

app = Flask(__name__)

PAGE = ("<!doctype html><html><head><title>Hello</title></head>"
        "<body><p>Hello, world!</p></body></html>")


@app.route("/")
def hello() -> str:
    return PAGE
