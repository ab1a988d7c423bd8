"""The site's migration, run by flaskstack before the app starts (FLASKSTACK_PRESTART)."""

import sqlite3

from app import DB

with sqlite3.connect(DB) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS visits (n INTEGER NOT NULL)")
    if conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 0:
        conn.execute("INSERT INTO visits VALUES (0)")
print("mysite: database ready")
