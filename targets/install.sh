#!/usr/bin/env bash
# What the live tests need from Debian's packages, installed only if missing:
# Chromium and chromedriver (the browser tests), Flask and gunicorn (the
# Flask reference target, targets/flask/), Django 3.2 (targets/django/) and
# Flask-Mail (targets/flask-mail/), libfaketime (a target's controlled
# clock); and the Express app's npm packages
# (targets/express/, node 20 is on the machine). .ci/run calls it; on your own
# machine run it once before `cargo test --workspace`.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
/usr/bin/python3 -c 'import flask' >/dev/null 2>&1 || need+=(python3-flask)
command -v gunicorn >/dev/null 2>&1 || need+=(gunicorn)
/usr/bin/python3 -c 'import django' >/dev/null 2>&1 || need+=(python3-django)
/usr/bin/python3 -c 'import flask_mail' >/dev/null 2>&1 || need+=(python3-flask-mail)
# libfaketime: the controlled clock of a target ([time] clock, --speed).
command -v faketime >/dev/null 2>&1 || need+=(faketime)

# The Express reference app's packages, exactly as its lockfile pins them.
here=$(dirname "$0")
if [ ! -d "$here/express/node_modules" ]; then
  (cd "$here/express" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "installing from Debian's packages: ${need[*]}"
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
