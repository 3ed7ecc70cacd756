//! The clock of a live run: the harness's scenario time, and, for a target
//! that opts in (`[time] clock = "faketime"`), the clock its processes
//! read, through Debian's libfaketime.
//!
//! Scenario time is real time times the target's `speed`. The app's clock
//! reads `start` at scenario time 0 and runs `speed` times as fast, in
//! every process of the run: libfaketime's `+offset xN` makes a process
//! read `t + offset + (t - t0) (N - 1)`, where `t0` is when the library
//! loaded in it, so each process gets the offset that puts it on the one
//! line `start + (t - origin) N`. The offset goes in a file the library
//! reads at every call (`FAKETIME_TIMESTAMP_FILE`): first computed from the
//! instant before the spawn, then again once the spawn has returned (the
//! program has been exec'd, and the library loads right after), so the
//! error is the loader's few milliseconds times `N - 1`, not the spawn's.
//! Once every instance is ready, the files are written a last time with
//! the run's origin, so that scenario time 0 is `start` in every run: a
//! verdict that rests on a 30 s TOTP step or a day boundary replays.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where Debian's `faketime` package puts the library (`OTPSIM_LIBFAKETIME`
/// overrides it).
const LIBRARIES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// A target's controlled clock, as its file asks (`[time]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeClock {
    /// What the app's clock reads at scenario time 0, in Unix milliseconds.
    pub start_unix_ms: i64,
    /// How many times as fast the app's clock and the scenario run.
    pub speed: u32,
}

/// The instant `2026-12-02T10:00:00Z`: the default start, so that runs
/// of one file read the same clock.
pub const DEFAULT_START_UNIX_MS: i64 = 1_796_205_600_000;

impl FakeClock {
    /// libfaketime, or why it cannot be found.
    pub fn library() -> Result<PathBuf, String> {
        if let Some(path) = std::env::var_os("OTPSIM_LIBFAKETIME") {
            return Ok(PathBuf::from(path));
        }
        LIBRARIES.iter().map(PathBuf::from).find(|p| p.exists()).ok_or_else(|| {
            format!(
                "the target asks for [time] clock = \"faketime\", and libfaketime is not installed (Debian: apt-get install faketime; looked in {})",
                LIBRARIES.join(", ")
            )
        })
    }

    /// The environment of a process whose clock `file` holds.
    pub fn env(library: &Path, file: &Path) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), library.display().to_string()),
            ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
            // Read at every call, so that the second writing counts.
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            // Newer libfaketime's way to make no shared-memory segment
            // (Debian's 0.9.10 ignores it: `Instance`'s drop removes the
            // segment instead).
            ("FAKETIME_DISABLE_SHM".into(), "1".into()),
        ]
    }

    /// Writes `file` for a process whose library loaded at `loaded` (Unix
    /// milliseconds), in a run whose scenario time 0 is the real instant
    /// `origin`.
    pub fn write(&self, file: &Path, origin_unix_ms: i64, loaded_unix_ms: i64) -> std::io::Result<()> {
        let n = i64::from(self.speed);
        // fake(t) = t + off + (t - loaded)(n - 1) = start + (t - origin) n
        let off = self.start_unix_ms - origin_unix_ms * n + loaded_unix_ms * (n - 1);
        let sign = if off < 0 { "-" } else { "+" };
        let spec = format!("{sign}{}.{:03} x{}\n", off.abs() / 1000, off.abs() % 1000, self.speed);
        // Whole or not at all: the library may read it at any moment.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, spec)?;
        std::fs::rename(&partial, file)
    }
}

/// Real Unix time in milliseconds (the harness's, outside any run).
pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A run's scenario clock: real time since its origin, times its speed.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    speed: u64,
}

impl Clock {
    /// Scenario time 0 at `origin`, running `speed` times as fast as real.
    pub fn new(origin: Instant, speed: u32) -> Clock {
        Clock {
            origin,
            speed: u64::from(speed.max(1)),
        }
    }
    /// Scenario milliseconds now.
    pub fn now(&self) -> u64 {
        self.scenario(self.origin.elapsed())
    }
    /// How long `scenario_ms` of scenario time lasts in real time.
    pub fn real(&self, scenario_ms: u64) -> Duration {
        Duration::from_millis(scenario_ms.div_ceil(self.speed))
    }
    /// How much scenario time a real `duration` is.
    pub fn scenario(&self, duration: Duration) -> u64 {
        duration.as_millis() as u64 * self.speed
    }
}

/// Unix milliseconds of a UTC instant written `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let s = &text[from..to];
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hh, mm, ss) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[m as usize - 1] || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_instants_parse_to_unix_time_and_bad_ones_do_not() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2026-12-02T10:00:00Z"), Some(DEFAULT_START_UNIX_MS));
        assert_eq!(parse_utc("2000-03-01T00:00:01Z"), Some(951_868_801_000));
        for bad in [
            "2026-02-29T00:00:00Z",
            "2026-12-02 10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-12-02T24:00:00Z",
            "+026-12-02T10:00:00Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_process_reads_one_line_whenever_it_was_spawned() {
        let clock = FakeClock {
            start_unix_ms: DEFAULT_START_UNIX_MS,
            speed: 10,
        };
        let file = std::env::temp_dir().join(format!("otpsim-clock-test-{}.rc", std::process::id()));
        let origin = 5_000_000;
        for loaded in [4_000_000, 4_999_000] {
            clock.write(&file, origin, loaded).unwrap();
            let spec = std::fs::read_to_string(&file).unwrap();
            let (off, speed) = spec.trim().split_once(" x").unwrap();
            assert_eq!(speed, "10");
            let off_ms = (off.parse::<f64>().unwrap() * 1000.0).round() as i64;
            // At the origin and 2 s later, whenever the library loaded.
            for t in [origin, origin + 2000] {
                let read = t + off_ms + (t - loaded) * 9;
                assert_eq!(read, DEFAULT_START_UNIX_MS + (t - origin) * 10, "{spec}");
            }
        }
        let _ = std::fs::remove_file(&file);
        let c = Clock::new(Instant::now(), 10);
        assert_eq!(c.real(15), Duration::from_millis(2));
        assert_eq!(c.scenario(Duration::from_millis(3)), 30);
    }
}
