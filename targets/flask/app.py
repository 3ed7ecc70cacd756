"""The seed's app, written from its incident report: Flask, SQLite, email codes.

FIX unset or 0: the original flow (docs/flows.md, naive), whose verify fails
with "No temp_registration found for temp_id: ..." when a second signup
replaced the registration the session names.

FIX=1: the fix the report shipped, its four parts as the report writes them:
per-process _request_locks with a 2 s window (is_request_allowed and
set_request_lock as separate calls), clear_otp_session, the database temp_id
check after signup, and the verify fallback of the report's snippet 5.

Configuration (environment): DATABASE (the SQLite file), SECRET_KEY (signs
the session cookie), SMTP_HOST, SMTP_PORT, OTP_TTL_MS (default 600000), FIX.
"""

import hashlib
import hmac
import os
import re
import secrets
import smtplib
import sqlite3
import time
from email.message import EmailMessage

from flask import Flask, g, jsonify, request, session

DATABASE = os.environ["DATABASE"]
SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "25"))
OTP_TTL_MS = int(os.environ.get("OTP_TTL_MS", "600000"))
FIX = os.environ.get("FIX", "0") == "1"
DEDUP_WINDOW_S = 2.0
EMAIL = re.compile(r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["SECRET_KEY"],
    SESSION_COOKIE_HTTPONLY=True,
    SESSION_COOKIE_SAMESITE="Lax",
    MAX_CONTENT_LENGTH=8 * 1024,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS temp_registrations (
    temp_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    otp TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);
"""


def get_db():
    # Python's sqlite3 defaults: a 5 s busy timeout, and an implicit BEGIN
    # before the first INSERT/UPDATE/DELETE that lasts until commit().
    if "db" not in g:
        g.db = sqlite3.connect(DATABASE, timeout=5.0)
    return g.db


@app.teardown_appcontext
def close_db(_exc):
    db = g.pop("db", None)
    if db is not None:
        db.close()


# Every worker of a deployment runs this at once on one file. Switching to
# WAL takes the file whole, and SQLite answers "database is locked" at once
# rather than wait when another connection is on its way to a write, so
# the switch is retried here, as the busy timeout would if it could.
for _attempt in range(100):
    try:
        with sqlite3.connect(DATABASE, timeout=5.0) as _db:
            _db.execute("PRAGMA journal_mode=WAL")
            _db.executescript(SCHEMA)
        break
    except sqlite3.OperationalError as e:
        if "locked" not in str(e) or _attempt == 99:
            raise
        time.sleep(0.02)


def now_ms():
    return int(time.time() * 1000)


def password_hash(email, password):
    # Cheap on purpose (see README.md): the races under test do not depend
    # on the hash, and a slow one only widens the windows.
    salt = hashlib.sha256(("salt:" + email).encode()).digest()
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000).hex()


def answer(status, code, message):
    # The spec's code names the case here; the app answers only a status and
    # a message, as the seed's create_error_response does, and the target
    # file maps them back (targets/flask-*.toml).
    del code
    return jsonify({"success": status == 200, "message": message}), status


def form_email():
    email = request.form.get("email", "").strip().lower()
    if not EMAIL.match(email):
        return None
    return email


def send_code(email, otp):
    msg = EmailMessage()
    msg["From"] = "noreply@sana.test"
    msg["To"] = email
    msg["Subject"] = "Your verification code"
    msg.set_content(f"Your verification code is {otp}.")
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=30) as smtp:
        smtp.send_message(msg)


# ---- the fix's per-process request locks -----------------------------------

_request_locks = {}


def is_request_allowed(email):
    """Check if a request is allowed (not too frequent)."""
    entry = _request_locks.get(email)
    if entry is None:
        return True
    return not entry["locked"] and time.time() - entry["last"] >= DEDUP_WINDOW_S


def set_request_lock(email, locked=True):
    """Set or release the lock for a specific email."""
    entry = _request_locks.setdefault(email, {"locked": False, "last": 0.0})
    entry["locked"] = locked
    if locked:
        entry["last"] = time.time()


def clear_otp_session():
    session.pop("temp_user_id", None)
    session.pop("email", None)


def find_temp_id_by_email(db, email, newest=False):
    order = " ORDER BY created_at DESC, rowid DESC LIMIT 1" if newest else ""
    row = db.execute("SELECT temp_id FROM temp_registrations WHERE email = ?" + order, (email,)).fetchone()
    return row[0] if row else None


# ---- routes -----------------------------------------------------------------


@app.get("/")
def index():
    return PAGE.format(title="SANA signup", body="<p>Sign up, verify your email, log in.</p>")


@app.get("/signup")
def signup_page():
    return PAGE.format(title="Sign up", body=form("signup", [("email", "email"), ("password", "password")]))


@app.get("/verify")
def verify_page():
    return PAGE.format(title="Verify", body=form("verify", [("email", "email"), ("otp", "text"), ("password", "password")]))


@app.get("/login")
def login_page():
    return PAGE.format(title="Log in", body=form("login", [("email", "email"), ("password", "password")]))


@app.post("/signup")
def signup():
    email = form_email()
    password = request.form.get("password", "")
    if email is None:
        return answer(400, "bad_request", "A valid email address is required.")
    if not password:
        return answer(400, "bad_request", "A password is required.")
    if not FIX:
        return original_signup(email, password)
    if not is_request_allowed(email):
        return answer(429, "too_many_requests", "Please wait before trying again")
    set_request_lock(email, True)
    try:
        return fixed_signup(email, password)
    finally:
        set_request_lock(email, False)


def create_temp_registration(db, email, password):
    temp_id = f"temp_{int(time.time())}_{secrets.token_hex(4)}"
    otp = f"{secrets.randbelow(1_000_000):06d}"
    db.execute("DELETE FROM temp_registrations WHERE email = ?", (email,))
    db.execute(
        "INSERT INTO temp_registrations (temp_id, email, password_hash, otp, created_at) VALUES (?, ?, ?, ?, ?)",
        (temp_id, email, password_hash(email, password), otp, now_ms()),
    )
    db.commit()
    return temp_id, otp


def original_signup(email, password):
    db = get_db()
    temp_id, otp = create_temp_registration(db, email, password)
    send_code(email, otp)
    session["temp_user_id"] = temp_id
    session["email"] = email
    return answer(200, "ok", f"Verification code sent to {email}")


def fixed_signup(email, password):
    clear_otp_session()
    db = get_db()
    temp_id = None
    try:
        temp_id, otp = create_temp_registration(db, email, password)
        send_code(email, otp)
        db_temp_id = find_temp_id_by_email(db, email)
        if db_temp_id and db_temp_id != temp_id:
            temp_id = db_temp_id  # Use database temp_id
        session["temp_user_id"] = temp_id
        session["email"] = email
        if session.get("temp_user_id") != temp_id:
            return answer(500, "server_error", "Session data inconsistency")
        return answer(200, "ok", f"Verification code sent to {email}")
    except sqlite3.Error:
        db.rollback()
        if temp_id is not None:
            try:
                db.execute("DELETE FROM temp_registrations WHERE temp_id = ?", (temp_id,))
                db.commit()
            except sqlite3.Error:
                pass
        return answer(500, "server_error", "Registration failed because of a database error; please try again.")


@app.post("/verify")
def verify():
    otp = request.form.get("otp", "").strip()
    if not re.fullmatch(r"[0-9]{6}", otp):
        return answer(400, "bad_request", "The code is six digits.")
    temp_id = session.get("temp_user_id")
    if not temp_id:
        return answer(400, "session_missing", "No signup in progress in this session; please sign up again.")
    db = get_db()
    if FIX:
        # The report's snippet 5, in verify_otp.
        email = session.get("email")
        db_temp_id = find_temp_id_by_email(db, email, newest=True) if email else None
        if db_temp_id and db_temp_id != temp_id:
            temp_id = db_temp_id  # Use database temp_id
            session["temp_user_id"] = temp_id  # Update session
    row = db.execute(
        "SELECT email, password_hash, otp, created_at FROM temp_registrations WHERE temp_id = ?", (temp_id,)
    ).fetchone()
    if row is None:
        return answer(404, "no_registration", f"No temp_registration found for temp_id: {temp_id}")
    email, pw_hash, stored, created_at = row
    if now_ms() - created_at >= OTP_TTL_MS:
        return answer(410, "otp_expired", "This code has expired; please sign up again.")
    if not hmac.compare_digest(stored, otp):
        return answer(400, "invalid_otp", "That code is not right; check the latest email.")
    try:
        db.execute("INSERT INTO users (email, password_hash) VALUES (?, ?)", (email, pw_hash))
        db.execute("DELETE FROM temp_registrations WHERE temp_id = ?", (temp_id,))
        db.commit()
    except sqlite3.Error:
        db.rollback()
        if FIX:
            return answer(500, "server_error", "Verification failed because of a database error; please try again.")
        raise
    clear_otp_session()
    return answer(200, "ok", "Email verified; your account is ready.")


@app.post("/login")
def login():
    email = form_email()
    password = request.form.get("password", "")
    if email is None:
        return answer(400, "bad_request", "A valid email address is required.")
    row = get_db().execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
    if row is None or not hmac.compare_digest(row[0], password_hash(email, password)):
        return answer(401, "bad_credentials", "Wrong email or password.")
    session["user"] = email
    return answer(200, "ok", f"Signed in as {email}.")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
{body}
<p><a href="/signup">Sign up</a> · <a href="/verify">Verify</a> · <a href="/login">Log in</a></p>
</body></html>"""


def form(kind, fields):
    inputs = "".join(f'<label>{name} <input name="{name}" id="{name}" type="{t}"></label>\n' for name, t in fields)
    return f'<form method="post" action="/{kind}" id="{kind}-form">\n{inputs}<button type="submit" id="submit">{kind}</button>\n</form>'
