// A small Express signup: an emailed time-based code, the pending signup
// in a signed cookie, accounts in a JSON file. Its flaws are on purpose
// (README.md names them).
//
// Configuration (environment): PORT, SECRET (signs cookies), ACCOUNTS (the
// accounts file), SMTP_HOST, SMTP_PORT.

"use strict";

const crypto = require("crypto");
const fs = require("fs");
const express = require("express");
const cookieParser = require("cookie-parser");
const nodemailer = require("nodemailer");

// One secret for every code: the code depends only on the time.
const TOTP_SECRET = "JBSWY3DPEHPK3PXP";
const STEP_S = 30;

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(cookieParser(process.env.SECRET));

const mail = nodemailer.createTransport({
  host: process.env.SMTP_HOST || "127.0.0.1",
  port: Number(process.env.SMTP_PORT || 25),
  secure: false,
  // A relay on this host: no TLS.
  ignoreTLS: true,
});

const accountsFile = process.env.ACCOUNTS || "accounts.json";

function accounts() {
  try {
    return JSON.parse(fs.readFileSync(accountsFile, "utf8"));
  } catch (e) {
    return {};
  }
}

function hash(password) {
  return crypto.createHash("sha256").update(password).digest("hex");
}

function totp(step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac("sha1", TOTP_SECRET).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return String(n).padStart(6, "0");
}

function step() {
  return Math.floor(Date.now() / 1000 / STEP_S);
}

function answer(res, status, error, message) {
  res.status(status).json({ error, message });
}

app.get("/", (req, res) => {
  res.json({ user: req.signedCookies.user || null });
});

app.post("/signup", async (req, res) => {
  const email = String(req.body.email || "").trim().toLowerCase();
  const password = String(req.body.password || "");
  if (!email.includes("@") || !password) {
    return answer(res, 400, "bad_request", "An address and a password, please.");
  }
  if (accounts()[email]) {
    return answer(res, 400, "exists", "This address already has an account.");
  }
  const code = totp(step());
  try {
    await mail.sendMail({
      from: "signup@example.com",
      to: email,
      subject: "Your code",
      text: `Your code: ${code}. It is valid for 60 seconds.`,
    });
  } catch (e) {
    return answer(res, 503, "mail_failed", "We could not send the mail; try again.");
  }
  // The pending signup rides in the browser's signed cookie.
  res.cookie("pending", JSON.stringify({ email, password: hash(password) }), {
    signed: true,
    httpOnly: true,
    sameSite: "lax",
  });
  res.json({ error: null, message: `We sent a code to ${email}.` });
});

app.post("/verify", (req, res) => {
  const raw = req.signedCookies.pending;
  if (!raw) {
    return answer(res, 400, "no_signup", "No signup in progress.");
  }
  const pending = JSON.parse(raw);
  const code = String(req.body.code || "").trim();
  // This step's code or the last one's: a code lives 30 to 60 s.
  if (code !== totp(step()) && code !== totp(step() - 1)) {
    return answer(res, 400, "wrong_code", "That code is not right.");
  }
  const all = accounts();
  if (all[pending.email]) {
    return answer(res, 200, null, "Already verified; please log in.");
  }
  all[pending.email] = pending.password;
  fs.writeFileSync(accountsFile, JSON.stringify(all));
  res.clearCookie("pending");
  res.cookie("user", pending.email, { signed: true, httpOnly: true, sameSite: "lax" });
  res.json({ error: null, message: "Your account is ready." });
});

app.post("/login", (req, res) => {
  const email = String(req.body.email || "").trim().toLowerCase();
  if (accounts()[email] !== hash(String(req.body.password || ""))) {
    return answer(res, 401, "bad_login", "Wrong address or password.");
  }
  res.cookie("user", email, { signed: true, httpOnly: true, sameSite: "lax" });
  res.json({ error: null, message: `Welcome back, ${email}.` });
});

app.listen(Number(process.env.PORT), "127.0.0.1");
