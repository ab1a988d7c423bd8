"""A small user site hosted by the flaskstack image: its own app, dependency and migration."""

import sqlite3
import time
from pathlib import Path

import markdown
from flask import Flask

DB = Path("/web/data/mysite.db")
app = Flask(__name__)


@app.get("/")
def home() -> str:
    with sqlite3.connect(DB) as conn:
        (visits,) = conn.execute("UPDATE visits SET n = n + 1 RETURNING n").fetchone()
    return markdown.markdown(f"# My site\n\nVisit number **{visits}**.")


@app.get("/slow")
def slow() -> str:
    time.sleep(2)
    return "finished"
