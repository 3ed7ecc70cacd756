//! A scenario written back as a format-2 file: what explore saves.

use super::*;

impl Scenario {
    /// The scenario as a file that loads back to the same
    /// scenario (defaults written out, so a reader sees every setting).
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let d = &self.deployment;
        let mut out = String::new();
        if self.format != 1 {
            let _ = writeln!(out, "format = {}", self.format);
        }
        let _ = writeln!(out, "name = {}", q(&self.name));
        if !self.description.is_empty() {
            let _ = writeln!(out, "description = {}", q(&self.description));
        }
        for b in &self.browsers {
            let owns: Vec<String> = b.owns.iter().map(|e| q(e.as_str())).collect();
            let _ = writeln!(
                out,
                "\n[[browser]]\nname = {}\nowns = [{}]",
                q(&b.name),
                owns.join(", ")
            );
            if let Some(p) = &b.password {
                let _ = writeln!(out, "password = {}", q(p));
            }
            if b.sees_everything {
                let _ = writeln!(out, "sees = \"everything\"");
            }
        }
        let session = match d.session {
            SessionMode::Cookie => "cookie",
            SessionMode::Server => "server",
        };
        let _ = writeln!(
            out,
            "\n[deployment]\nworkers = {}\nsession = {}\nmail_latency = {}\notp_ttl = {}\nmax_attempts = {}",
            d.workers,
            q(session),
            q(&format_duration(d.mail_latency_ms)),
            q(&format_duration(d.otp_ttl_ms)),
            d.max_attempts
        );
        if d.db_mode != DbMode::Autocommit {
            let _ = writeln!(out, "db_mode = {}", q(d.db_mode.as_str()));
        }
        for r in &self.requests {
            let kind = r.kind.as_str();
            let _ = writeln!(
                out,
                "\n[[request]]\nat = {}\nbrowser = {}\nkind = {}",
                q(&format_duration(r.at_ms)),
                q(&r.browser),
                q(kind)
            );
            let _ = writeln!(out, "email = {}", q(r.email.as_str()));
            // A resend's password is its browser's, filled in on loading.
            if r.kind != Kind::Resend && (r.kind != Kind::Verify || self.format >= 2) {
                let _ = writeln!(out, "password = {}", q(&r.password));
            }
            match r.kind {
                Kind::Signup | Kind::Login | Kind::Resend => {}
                Kind::Verify => {
                    let otp = match &r.otp {
                        OtpChoice::Latest => "latest",
                        OtpChoice::First => "first",
                        OtpChoice::Wrong => "wrong",
                        OtpChoice::Literal(o) => o.digits(),
                    };
                    let _ = writeln!(out, "otp = {}", q(otp));
                }
            }
            if r.repeat != 1 {
                let _ = writeln!(out, "repeat = {}", r.repeat);
            }
            if let Some(w) = r.worker {
                let _ = writeln!(out, "worker = {w}");
            }
            if r.response_delay_ms != 0 {
                let _ = writeln!(out, "response_delay = {}", q(&format_duration(r.response_delay_ms)));
            }
            if r.email_delay_ms != 0 {
                let _ = writeln!(out, "email_delay = {}", q(&format_duration(r.email_delay_ms)));
            }
            if r.via == Via::Form {
                let _ = writeln!(out, "via = \"form\"");
            }
        }
        for f in &self.faults {
            let (kind, error) = match f.kind {
                FaultKind::Db(DbFault::Busy) => ("db", Some("busy")),
                FaultKind::Db(DbFault::Io) => ("db", Some("io")),
                FaultKind::Db(DbFault::Full) => ("db", Some("full")),
                FaultKind::Crash => ("crash", None),
                FaultKind::Mail => ("mail", None),
            };
            let _ = writeln!(out, "\n[[fault]]\nkind = {}\nrequest = {}", q(kind), f.request + 1);
            match (f.kind, f.statement) {
                (FaultKind::Mail, _) => {}
                (_, StatementChoice::Nth(n)) => {
                    let _ = writeln!(out, "statement = {n}");
                }
                (_, StatementChoice::Every) => {
                    let _ = writeln!(out, "statement = \"every\"");
                }
            }
            if let Some(e) = error {
                let _ = writeln!(out, "error = {}", q(e));
            }
        }
        let section = if self.format >= 2 { "schedules" } else { "explore" };
        let _ = writeln!(
            out,
            "\n[{section}]\nschedules = {}\nseed = {}",
            self.schedules, self.seed
        );
        if let Some(choices) = &self.choices {
            let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(out, "choices = [{}]", list.join(", "));
        }
        if self.invariants != Invariant::ALL {
            let names: Vec<String> = self.invariants.iter().map(|i| q(i.name())).collect();
            let _ = writeln!(out, "\n[check]\ninvariants = [{}]", names.join(", "));
        }
        if !self.probe {
            let _ = writeln!(out, "\n[probe]\nlogins = false");
        }
        let _ = writeln!(out, "\n[expect]");
        for (variant, expectation) in &self.expect {
            let _ = writeln!(out, "{variant} = {}", q(&expectation.to_string()));
        }
        out
    }
}
