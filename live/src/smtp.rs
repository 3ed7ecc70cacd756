//! The mail sink: an SMTP server on loopback that takes every message it
//! is given, parses it (mail-parser) and hands it to the live executor,
//! which puts it in its address's mailbox when the scenario says.
//!
//! It speaks the small part of RFC 5321 a mail client needs to deliver
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), and what an app set up
//! for a real provider asks first: STARTTLS (RFC 3207) with a throwaway
//! self-signed certificate made at start, and AUTH PLAIN or LOGIN (RFC
//! 4954), any name and password accepted. It is ours rather than an
//! embedded-server crate's because the executor must hold the reply to
//! DATA for the scenario's `mail_latency` (the sender's handler blocks on
//! it, as on a slow relay) and must know the instant each message arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// The largest message accepted, in bytes.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The longest command line read (RFC 5321 allows 512 octets).
const MAX_LINE_BYTES: u64 = 4096;

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope's recipients (`RCPT TO`).
    pub recipients: Vec<String>,
    /// The parsed `To:` address, if any (lower case).
    pub to: Option<String>,
    /// The value of the `X-Otpsim-Request` header, if any.
    pub request: Option<usize>,
    /// The text body.
    pub body: String,
}

/// A running sink.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a sink on a free loopback port. Each message goes to `out` once
/// the client has sent it and before the reply to DATA, which waits
/// `reply_delay` (the scenario's `mail_latency`).
pub async fn start(out: mpsc::UnboundedSender<Received>, reply_delay: Duration) -> std::io::Result<Sink> {
    start_at(SocketAddr::from(([127, 0, 0, 1], 0)), out, reply_delay).await
}

/// [`start`] on a given address (a test that brings the mail server up
/// only after a sender was refused).
pub async fn start_at(
    addr: SocketAddr,
    out: mpsc::UnboundedSender<Received>,
    reply_delay: Duration,
) -> std::io::Result<Sink> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let out = Arc::new(out);
    let tls = Arc::new(acceptor()?);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let out = Arc::clone(&out);
            let tls = Arc::clone(&tls);
            tokio::spawn(async move {
                // A client that misbehaves loses its own message only.
                let _ = session(stream, &out, reply_delay, &tls).await;
            });
        }
    });
    Ok(Sink { addr, task })
}

/// TLS for STARTTLS: a self-signed certificate for `localhost` and
/// `127.0.0.1`, made for this sink and never kept. Mail clients set up for
/// a real provider ask for TLS; none here checks who answers.
fn acceptor() -> std::io::Result<TlsAcceptor> {
    let other = |e: &dyn std::fmt::Display| std::io::Error::other(format!("the sink's TLS: {e}"));
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| other(&e))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| other(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How a dialogue ended.
enum End {
    /// The client quit or hung up.
    Closed,
    /// The client asked for TLS, and was told to start it.
    StartTls,
}

async fn session(
    stream: tokio::net::TcpStream,
    out: &mpsc::UnboundedSender<Received>,
    reply_delay: Duration,
    tls: &TlsAcceptor,
) -> std::io::Result<()> {
    let mut plain = BufReader::new(stream);
    plain.write_all(b"220 otpsim mail sink ready\r\n").await?;
    if let End::StartTls = dialogue(&mut plain, out, reply_delay, true).await? {
        // The client waits for the handshake: nothing it sent is buffered.
        let stream = tls.accept(plain.into_inner()).await?;
        // RFC 3207: the client starts again with EHLO.
        dialogue(&mut BufReader::new(stream), out, reply_delay, false).await?;
    }
    Ok(())
}

/// One SMTP dialogue over `stream`, offering STARTTLS if `plain`.
async fn dialogue<S: AsyncBufRead + AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mpsc::UnboundedSender<Received>,
    reply_delay: Duration,
    plain: bool,
) -> std::io::Result<End> {
    let mut recipients: Vec<String> = Vec::new();
    let mut sender = false;
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut *stream).take(MAX_LINE_BYTES).read_line(&mut line).await? == 0 {
            return Ok(End::Closed);
        }
        if !line.ends_with('\n') {
            stream.write_all(b"500 Line too long\r\n").await?;
            return Ok(End::Closed);
        }
        let command = line.trim_end().to_string();
        let mut words = command.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if plain => {
                b"250-otpsim\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 262144\r\n"
            }
            "EHLO" => b"250-otpsim\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 262144\r\n",
            "HELO" => b"250 otpsim\r\n",
            "STARTTLS" if plain => {
                stream.write_all(b"220 Ready to start TLS\r\n").await?;
                stream.flush().await?;
                return Ok(End::StartTls);
            }
            "STARTTLS" => b"503 TLS already active\r\n",
            "AUTH" => {
                // Any name and password: the sink is no one's mailbox.
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().is_some();
                let prompts: &[&[u8]] = match (mechanism.as_str(), initial) {
                    ("PLAIN", true) => &[],
                    ("PLAIN", false) => &[b"334 \r\n"],
                    ("LOGIN", true) => &[b"334 UGFzc3dvcmQ6\r\n"],
                    ("LOGIN", false) => &[b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"],
                    _ => &[b"504 Unrecognized authentication type\r\n"],
                };
                let refused = !matches!(mechanism.as_str(), "PLAIN" | "LOGIN");
                for prompt in prompts {
                    stream.write_all(prompt).await?;
                    if refused {
                        break;
                    }
                    stream.flush().await?;
                    line.clear();
                    if (&mut *stream).take(MAX_LINE_BYTES).read_line(&mut line).await? == 0 {
                        return Ok(End::Closed);
                    }
                }
                if refused {
                    continue;
                }
                b"235 2.7.0 Authentication successful\r\n"
            }
            "MAIL" => {
                sender = true;
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" if sender => {
                let address = command
                    .split_once(':')
                    .map(|(_, a)| {
                        a.trim()
                            .trim_start_matches('<')
                            .split('>')
                            .next()
                            .unwrap_or("")
                            .to_ascii_lowercase()
                    })
                    .unwrap_or_default();
                recipients.push(address);
                b"250 OK\r\n"
            }
            "DATA" if !recipients.is_empty() => {
                stream.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                stream.flush().await?;
                let raw = read_data(&mut *stream).await?;
                let Some(raw) = raw else {
                    stream.write_all(b"552 Message too large\r\n").await?;
                    continue;
                };
                // Accepted when the reply to DATA goes out: the mail is
                // reported then, dated at acceptance as in the simulator,
                // and still before the sender can answer its request.
                tokio::time::sleep(reply_delay).await;
                let _ = out.send(parse(std::mem::take(&mut recipients), &raw));
                sender = false;
                b"250 OK: queued\r\n"
            }
            "RCPT" | "DATA" => b"503 Bad sequence of commands\r\n",
            "RSET" => {
                sender = false;
                recipients.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                stream.write_all(b"221 Bye\r\n").await?;
                stream.flush().await?;
                return Ok(End::Closed);
            }
            _ => b"502 Command not implemented\r\n",
        };
        stream.write_all(reply).await?;
        stream.flush().await?;
    }
}

/// The message up to the lone dot, dot-unstuffed; `None` if too large.
async fn read_data<R: AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut too_large = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if (&mut *lines)
            .take(MAX_MESSAGE_BYTES as u64)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_large).then_some(raw));
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        if raw.len() + text.len() > MAX_MESSAGE_BYTES {
            too_large = true;
        } else {
            raw.extend_from_slice(text);
        }
    }
}

fn parse(recipients: Vec<String>, raw: &[u8]) -> Received {
    let message = mail_parser::MessageParser::default().parse(raw);
    let to = message
        .as_ref()
        .and_then(|m| m.to())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_ascii_lowercase);
    let request = message
        .as_ref()
        .and_then(|m| m.header_raw("X-Otpsim-Request"))
        .and_then(|v| v.trim().parse().ok());
    let body = message
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|b| b.into_owned())
        .unwrap_or_default();
    Received {
        recipients,
        to,
        request,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's smtplib, as Flask-Mail and Django use it for a real
    /// provider: STARTTLS, then a login, then the message.
    #[test]
    fn a_client_set_up_for_a_real_provider_starts_tls_logs_in_and_delivers() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sink = runtime.block_on(start(tx, Duration::ZERO)).unwrap();
        // `body` runs with `s`, an smtplib client connected to the sink.
        let smtplib = |what: &str, body: &str| {
            let script = format!(
                "import smtplib\ns = smtplib.SMTP('127.0.0.1', {}, timeout=10)\n{body}\ns.quit()\n",
                sink.addr.port()
            );
            let ran = std::process::Command::new("python3")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert!(ran.status.success(), "{what}: {}", String::from_utf8_lossy(&ran.stderr));
        };
        for (auth, login) in [
            ("PLAIN", "s.login('app@example.com', 'hunter2')"),
            (
                "LOGIN",
                "s.ehlo(); s.esmtp_features['auth'] = 'LOGIN'; s.login('app', 'pw')",
            ),
        ] {
            smtplib(
                auth,
                &format!(
                    "s.starttls()\nassert s.sock.version(), 'no TLS'\n{login}\n\
                     s.sendmail('app@example.com', ['ana@example.com'], 'To: ana@example.com\\r\\nSubject: c\\r\\n\\r\\nYour code is 482913 ({auth}).\\r\\n')"
                ),
            );
            let mail = rx.try_recv().expect("the message reached the executor");
            assert_eq!(mail.recipients, ["ana@example.com"]);
            assert!(mail.body.contains(&format!("482913 ({auth})")), "{:?}", mail.body);
        }
        // Without TLS a client is still served, and TLS is offered once.
        smtplib(
            "plain",
            "s.ehlo()\nassert s.has_extn('starttls') and s.has_extn('auth')\ns.starttls(); s.ehlo()\nassert not s.has_extn('starttls')",
        );
    }

    #[test]
    fn a_message_is_parsed_for_its_address_label_and_body() {
        let raw = b"From: a@x.org\r\nTo: Ana <Ana@Example.com>\r\nX-Otpsim-Request: 7\r\nSubject: s\r\n\r\nYour code is 123456.\r\n";
        let got = parse(vec!["ana@example.com".into()], raw);
        assert_eq!(got.to.as_deref(), Some("ana@example.com"));
        assert_eq!(got.request, Some(7));
        assert!(got.body.contains("123456"), "{:?}", got.body);
    }
}
