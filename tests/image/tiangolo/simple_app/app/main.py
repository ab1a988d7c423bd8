import sys

from flask import Flask, request

app = Flask(__name__)
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@app.route("/")
def hello():
    return f"Hello from Flask on Python {PYTHON} - simple app"


@app.route("/upload", methods=["POST"])
def upload():
    return f"received {len(request.get_data())} bytes"
