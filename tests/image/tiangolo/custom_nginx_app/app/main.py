import sys

from flask import Flask

app = Flask(__name__)
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@app.route("/")
def hello():
    return f"Hello from Flask on Python {PYTHON} - custom nginx.conf"


@app.route("/static/test.txt")
def static_from_flask():
    return "Static, from Flask"
