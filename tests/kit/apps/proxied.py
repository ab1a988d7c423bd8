"""A fixture Flask app behind ProxyFix, as Flask's deployment docs advise."""

from flask import Flask, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)


@app.get("/absolute")
def absolute():
    return url_for("absolute", _external=True)


@app.get("/folder/")
def folder():
    return "folder"


@app.get("/request-id")
def request_id():
    return request.headers.get("X-Request-ID", "")
