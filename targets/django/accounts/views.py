"""Signup with an emailed four-digit code, then an account and a login.

The flaws are on purpose: README.md names them.
"""
import secrets
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import authenticate, login
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .models import Pending

CODE_LIFETIME = timedelta(minutes=10)


def home(request):
    return render(request, "accounts/home.html")


def signup(request):
    if request.method != "POST":
        return render(request, "accounts/signup.html")
    email = request.POST.get("email", "").strip().lower()
    if "@" not in email:
        return render(request, "accounts/signup.html", {"error": "Enter a valid email address."})
    # One pending signup per address: a new one replaces the old, and the
    # old code dies with it.
    Pending.objects.filter(email=email).delete()
    code = f"{secrets.randbelow(10000):04d}"
    pending = Pending.objects.create(email=email, code=code)
    send_mail(
        "Your verification code",
        f"Your verification code is {code}. It is valid for 10 minutes.",
        None,
        [email],
    )
    request.session["pending_id"] = pending.id
    request.session["email"] = email
    messages.info(request, f"We sent a code to {email}.")
    return redirect("/verify/")


def verify(request):
    if request.method != "POST":
        return render(request, "accounts/verify.html", {"email": request.session.get("email", "")})

    def again(error):
        return render(request, "accounts/verify.html", {"error": error, "email": request.session.get("email", "")})

    code = "".join(request.POST.get(f"otp_digit_{i}", "") for i in range(4))
    username = request.POST.get("username", "").strip()
    password = request.POST.get("password", "")
    pending_id = request.session.get("pending_id")
    pending = Pending.objects.filter(id=pending_id).first() if pending_id else None
    if pending_id and pending is None:
        return again(f"No pending signup found for id {pending_id}.")
    if pending is not None:
        if timezone.now() - pending.created > CODE_LIFETIME:
            return again("That code has expired. Sign up again.")
        if not constant_time_compare(code, pending.code):
            # Counted, never enforced.
            pending.attempts += 1
            pending.save()
            return again("That code is not right.")
        email = pending.email
    else:
        # A session with no signup in it: the address comes from the form.
        email = request.POST.get("email", "").strip().lower()
    if not username or not password or "@" not in email:
        return again("Fill in every field.")
    if User.objects.filter(email=email).exists():
        return again("An account already exists for this address.")
    if User.objects.filter(username=username).exists():
        return again("That username is taken.")
    user = User.objects.create_user(username, email, password)
    Pending.objects.filter(email=email).delete()
    request.session.pop("pending_id", None)
    login(request, user)
    messages.success(request, "Your account is ready.")
    return redirect("/")


def login_view(request):
    if request.method != "POST":
        return render(request, "accounts/login.html")
    user = authenticate(
        request,
        username=request.POST.get("username", "").strip(),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return render(request, "accounts/login.html", {"error": "Please enter a correct username and password."})
    login(request, user)
    messages.success(request, f"Welcome back, {user.username}.")
    return redirect("/")
