//! The mail sink: an SMTP server on loopback that takes every message it
//! is given, parses it (mail-parser) and hands it to the live executor,
//! which puts it in its address's mailbox when the scenario says.
//!
//! It speaks the small part of RFC 5321 a mail client needs to deliver
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). It is ours rather than
//! an embedded-server crate's because the executor must hold the reply to
//! DATA for the scenario's `mail_latency` (the sender's handler blocks on
//! it, as on a slow relay) and must know the instant each message arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

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
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let out = Arc::clone(&out);
            tokio::spawn(async move {
                // A client that misbehaves loses its own message only.
                let _ = session(stream, &out, reply_delay).await;
            });
        }
    });
    Ok(Sink { addr, task })
}

async fn session(
    stream: tokio::net::TcpStream,
    out: &mpsc::UnboundedSender<Received>,
    reply_delay: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 otpsim mail sink ready\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut sender = false;
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut lines).take(MAX_LINE_BYTES).read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') {
            write.write_all(b"500 Line too long\r\n").await?;
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-otpsim\r\n250-8BITMIME\r\n250 SIZE 262144\r\n",
            "HELO" => b"250 otpsim\r\n",
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
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let raw = read_data(&mut lines).await?;
                let Some(raw) = raw else {
                    write.write_all(b"552 Message too large\r\n").await?;
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
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The message up to the lone dot, dot-unstuffed; `None` if too large.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<Option<Vec<u8>>> {
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

    #[test]
    fn a_message_is_parsed_for_its_address_label_and_body() {
        let raw = b"From: a@x.org\r\nTo: Ana <Ana@Example.com>\r\nX-Otpsim-Request: 7\r\nSubject: s\r\n\r\nYour code is 123456.\r\n";
        let got = parse(vec!["ana@example.com".into()], raw);
        assert_eq!(got.to.as_deref(), Some("ana@example.com"));
        assert_eq!(got.request, Some(7));
        assert!(got.body.contains("123456"), "{:?}", got.body);
    }
}
