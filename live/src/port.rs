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
//! ready probe then took for its own, while gunicorn kept retrying its
//! bind for five seconds. So an answer to the ready probe counts only
//! when the socket listening on the port belongs to the instance's own
//! process group ([`listener`]); another's, and the instance starts again
//! on another port.

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

/// Who holds the socket listening on a port of this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// A process of the group asked about.
    Group,
    /// Only processes outside it.
    Other,
    /// Not known: nothing listens on the port where 127.0.0.1 reaches it,
    /// or `/proc` does not say (a process of the group whose sockets
    /// cannot be read).
    Unknown,
}

/// Who listens on `port`, as Linux's `/proc` tells it: the group `group`
/// (a process group id, an instance's leader's pid), or another. A
/// socket a process of the group inherited or was handed counts as the
/// group's. Off Linux, or where `/proc` cannot be read, `Unknown`.
pub fn listener(port: u16, group: i32) -> Listener {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| listening(&text, port))
        .collect();
    if inodes.is_empty() {
        return Listener::Unknown;
    }
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Listener::Unknown;
    };
    let in_group = |pid: &str| {
        // The process group is the third field after the command's
        // closing parenthesis (the command itself may hold spaces).
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse::<i32>().ok())
            == Some(group)
    };
    // `None` when the process's sockets cannot be read (a setuid or
    // non-dumpable process): then nobody can say the group holds none.
    let holds = |pid: &str| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        Some(fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).ok().is_some_and(|link| {
                link.to_str()
                    .and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                    .is_some_and(|inode: u64| inodes.contains(&inode))
            })
        }))
    };
    let mut told = Listener::Other;
    for pid in processes
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| in_group(pid))
    {
        match holds(&pid) {
            Some(true) => return Listener::Group,
            Some(false) => {}
            None => told = Listener::Unknown,
        }
    }
    told
}

/// The inodes of the sockets listening on `port` in a `/proc/net/tcp` or
/// `tcp6` table at an address the probe's 127.0.0.1 reaches: loopback's
/// own, or every address (IPv4's or IPv6's, which takes IPv4 too).
fn listening(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    const REACHED: [&str; 4] = [
        "0100007F",
        "00000000",
        "00000000000000000000000000000000",
        "0000000000000000FFFF00000100007F",
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (address, local_port) = local.rsplit_once(':')?;
            let local_port = u16::from_str_radix(local_port, 16).ok()?;
            (local_port == port && *state == LISTEN && REACHED.contains(&address)).then(|| inode.parse().ok())?
        })
        .collect()
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

    #[test]
    fn a_listener_is_told_as_its_process_groups_or_anothers() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        // SAFETY: getpgrp(2) reads this process's group; it cannot fail.
        let ours = unsafe { libc::getpgrp() };
        assert_eq!(listener(port, ours), Listener::Group);
        let mut other = std::process::Command::new("sleep");
        std::os::unix::process::CommandExt::process_group(&mut other, 0);
        let mut other = other.arg("30").spawn().unwrap();
        let group = i32::try_from(other.id()).unwrap();
        let told = listener(port, group);
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(told, Listener::Other);
    }

    #[test]
    fn a_proc_table_names_the_sockets_listening_on_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 100 0 0 10 0
   3: 0200007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4545 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening(table, 8080), vec![4242]);
        // 127.0.0.2 is no address the probe's 127.0.0.1 reaches.
        assert_eq!(listening(table, 8081), vec![4444]);
        assert_eq!(listening(table, 8082), Vec::<u64>::new());
    }
}
