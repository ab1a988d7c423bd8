import os
import sys
from pathlib import Path

from flask import Flask

custom_app = Flask(__name__)
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@custom_app.route("/api")
def api():
    return f"Hello from Flask on Python {PYTHON} - custom app"


@custom_app.route("/")
def home():
    return "the app answered / (STATIC_INDEX should have)"


@custom_app.route("/content/test.txt")
def shadowed():
    return "the app answered a static URL"


@custom_app.route("/prestart")
def prestart():
    uid = Path("/tmp/prestart-uid").read_text().strip()
    return f"uid {uid}; {os.environ.get('PRESTART_GREETING', 'nothing exported')}"
