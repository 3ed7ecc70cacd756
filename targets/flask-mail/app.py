"""A Flask signup that mails its code through Flask-Mail, to an SMTP server
that wants STARTTLS and a login, as a real provider does.

The pending signup lives in Flask's signed session cookie: signed, not
encrypted. Pages are HTML forms; every answer to a form is a redirect to
the next page, with its message flashed (kept in the cookie until shown).
Its flaws are on purpose (README.md names them).

Configuration (environment): SECRET_KEY, DATABASE (the SQLite file of
accounts), MAIL_SERVER, MAIL_PORT, MAIL_USERNAME, MAIL_PASSWORD.
"""

import os
import secrets
import sqlite3
from datetime import datetime, timedelta
from urllib.parse import quote

from flask import Flask, flash, g, redirect, render_template_string, request, session
from flask_mail import Mail, Message
from werkzeug.security import check_password_hash, generate_password_hash

CODE_LIFETIME_S = 300

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["SECRET_KEY"],
    SESSION_COOKIE_HTTPONLY=True,
    SESSION_COOKIE_SAMESITE="Lax",
    MAIL_SERVER=os.environ.get("MAIL_SERVER", "127.0.0.1"),
    MAIL_PORT=int(os.environ.get("MAIL_PORT", "587")),
    MAIL_USE_TLS=True,
    MAIL_USERNAME=os.environ.get("MAIL_USERNAME"),
    MAIL_PASSWORD=os.environ.get("MAIL_PASSWORD"),
    MAIL_DEFAULT_SENDER="signup@example.com",
)
mail = Mail(app)

PAGE = """<!doctype html><html><head><title>{{ title }}</title></head><body>
{% for category, message in get_flashed_messages(with_categories=true) %}<p class="{{ category }}">{{ message }}</p>{% endfor %}
<h1>{{ title }}</h1>{{ form|safe }}</body></html>"""

FORMS = {
    "signup": """<form method="post" action="/signup">
<input type="email" name="email"> <input type="password" name="password">
<input type="password" name="password2"> <button>Sign up</button></form>""",
    "verify": """<form method="post" action="/verify?email={email}">
<input name="code" inputmode="numeric" autocomplete="one-time-code"> <button>Verify</button></form>""",
    "login": """<form method="post" action="/login">
<input type="email" name="email"> <input type="password" name="password"> <button>Log in</button></form>""",
}


def page(title, form=""):
    return render_template_string(PAGE, title=title, form=form)


def db():
    if "db" not in g:
        g.db = sqlite3.connect(os.environ["DATABASE"], timeout=5)
        g.db.execute("CREATE TABLE IF NOT EXISTS users (email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL)")
    return g.db


@app.teardown_appcontext
def close_db(_):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


@app.errorhandler(500)
def failed(_):
    # Start afresh after a failure.
    session.clear()
    return page("Something went wrong"), 500


@app.get("/")
def home():
    who = session.get("user")
    return page(f"Signed in as {who}" if who else "Welcome")


@app.get("/signup")
def signup_page():
    return page("Sign up", FORMS["signup"])


@app.post("/signup")
def signup():
    email = request.form.get("email", "").strip().lower()
    password = request.form.get("password", "")
    if "@" not in email or not password:
        flash("Enter an address and a password.", "error")
        return redirect("/signup")
    if password != request.form.get("password2"):
        flash("The passwords differ.", "error")
        return redirect("/signup")
    code = f"{secrets.randbelow(10**6):06d}"
    reference = secrets.token_hex(4)
    session["pending"] = {
        "email": email,
        "password_hash": generate_password_hash(password),
        "code": code,
        # The server's local time, as datetime.now() gives it...
        "expires": (datetime.now() + timedelta(seconds=CODE_LIFETIME_S)).replace(microsecond=0).isoformat(),
        "reference": reference,
    }
    mail.send(
        Message(
            "Your code",
            recipients=[email],
            body=f"Your code is {code}. Reference: {reference}",
        )
    )
    flash(f"We sent a code to {email}.", "info")
    return redirect(f"/verify?email={quote(email)}")


@app.get("/verify")
def verify_page():
    return page("Enter your code", FORMS["verify"].format(email=quote(request.args.get("email", ""))))


@app.post("/verify")
def verify():
    email = request.args.get("email", "").strip().lower()
    back = f"/verify?email={quote(email)}"
    pending = session.get("pending")
    if not pending or pending["email"] != email:
        flash("No signup in progress for this address.", "error")
        return redirect("/signup")
    # ...against UTC: west of UTC every code has expired before it is
    # typed, east of it a code lives hours longer than promised.
    if datetime.fromisoformat(pending["expires"]) < datetime.utcnow():
        flash("That code has expired.", "error")
        return redirect(back)
    if request.form.get("code", "").strip() != pending["code"]:
        flash("That code is not right.", "error")
        return redirect(back)
    conn = db()
    conn.execute("INSERT INTO users (email, password_hash) VALUES (?, ?)", (email, pending["password_hash"]))
    conn.commit()
    session.pop("pending")
    session["user"] = email
    flash("Your account is ready.", "info")
    return redirect("/")


@app.get("/login")
def login_page():
    return page("Log in", FORMS["login"])


@app.post("/login")
def login():
    email = request.form.get("email", "").strip().lower()
    row = db().execute("SELECT password_hash FROM users WHERE email = ?", (email,)).fetchone()
    if row is None or not check_password_hash(row[0], request.form.get("password", "")):
        flash("Wrong address or password.", "error")
        return redirect("/login")
    session["user"] = email
    flash(f"Welcome back, {email}.", "info")
    return redirect("/")
