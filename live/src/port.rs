//! Ports for an app's instances. An instance binds its port itself, a
//! moment after otpsim chose it, so nothing else may be given that port
//! meanwhile. It is drawn from below the kernel's ephemeral range, which
//! is never handed to a `bind` on port 0 (otpsim's proxies and SMTP
//! sinks) nor to an outgoing connection's own end, and never one this
//! process handed out lately. Several otpsim processes at once (a test
//! runner's parallel tests) draw at random, so that they seldom meet; an
//! instance that still finds its port taken starts again on another
//! (`run::PORT_RETRIES`). Found live: with `--jobs 4`, gunicorn found the
//! port chosen for it taken by another run's server, whose answer the
//! ready probe then took for its own. An app that keeps retrying its
//! bind (gunicorn, for five seconds) while another process answers on
//! its port is still not told apart by the probe: drawing apart is what
//! keeps that rare.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::Mutex;

use otpsim_core::ports::SplitMix64;

/// The lowest port drawn: above the well-known ports and the common
/// services'.
const LOWEST: u16 = 10_000;

/// Ports handed out that are not handed out again.
const REMEMBERED: usize = 1024;

/// Draws before falling back to the kernel's choice.
const DRAWS: usize = 64;

struct Picker {
    rng: SplitMix64,
    recent: VecDeque<u16>,
}

static PICKER: Mutex<Option<Picker>> = Mutex::new(None);

/// The first port of the kernel's ephemeral range, 32768 where
/// `/proc/sys/net/ipv4/ip_local_port_range` cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A port free on 127.0.0.1 now, for an instance to bind.
pub fn for_instance() -> std::io::Result<u16> {
    let top = ephemeral_start();
    let mut guard = PICKER.lock().unwrap_or_else(|p| p.into_inner());
    let picker = guard.get_or_insert_with(|| Picker {
        // Processes started together must draw apart; nothing here is
        // part of a run's outcome, so the pid and the time may seed it.
        rng: SplitMix64::new((u64::from(std::process::id()) << 32) ^ u64::from(crate::clock::unix_ms_now() as u32)),
        recent: VecDeque::new(),
    });
    let port = if top > LOWEST + 1000 {
        let span = u64::from(top - LOWEST);
        pick(picker, |rng| LOWEST + (rng.next_u64() % span) as u16)
    } else {
        None
    };
    // A range too narrow to draw from, or nothing free in it: the
    // kernel's own choice.
    let port = match port {
        Some(p) => p,
        None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
    };
    remember(picker, port);
    Ok(port)
}

/// The first port `draw` gives that this process did not hand out lately
/// and that is free now, within [`DRAWS`] draws.
fn pick(picker: &mut Picker, mut draw: impl FnMut(&mut SplitMix64) -> u16) -> Option<u16> {
    (0..DRAWS)
        .map(|_| draw(&mut picker.rng))
        .find(|p| !picker.recent.contains(p) && TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

fn remember(picker: &mut Picker, port: u16) {
    if picker.recent.len() == REMEMBERED {
        picker.recent.pop_front();
    }
    picker.recent.push_back(port);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ports_are_below_the_ephemeral_range_and_not_handed_out_twice() {
        let top = ephemeral_start();
        assert!(top > LOWEST + 1000, "this machine's ephemeral range starts at {top}");
        let ports: Vec<u16> = (0..500).map(|_| for_instance().unwrap()).collect();
        assert!(ports.iter().all(|p| (LOWEST..top).contains(p)), "{ports:?}");
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }

    #[test]
    fn a_port_in_use_or_handed_out_lately_is_not_drawn() {
        let mut picker = Picker {
            rng: SplitMix64::new(1),
            recent: VecDeque::new(),
        };
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let in_use = held.local_addr().unwrap().port();
        let handed = for_instance().unwrap();
        let free = for_instance().unwrap();
        remember(&mut picker, handed);
        let three = [in_use, handed, free];
        for _ in 0..10 {
            let drawn = pick(&mut picker, |rng| three[(rng.next_u64() % 3) as usize]);
            assert_eq!(drawn, Some(free));
        }
    }
}
