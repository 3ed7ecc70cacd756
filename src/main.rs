//! The otpsim command line: a thin layer over `otpsim-core` and `otpsim-sim`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use otpsim_core::local::Local;
use otpsim_core::platform::Std;
use otpsim_core::{Request, Session, Variant};

#[derive(Parser)]
#[command(
    name = "otpsim",
    version,
    about = "Deterministic concurrency tests for signup and email-OTP flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replays the seed incident by hand on each variant: two signups 3 s
    /// apart whose responses arrive in the other order, then a verify with
    /// the newest code.
    Demo,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo => demo(),
    }
}

fn demo() -> Result<()> {
    for variant in Variant::MAIN {
        let local = Local::<Std>::new(variant, 1, 1)?;
        let signup = Request::Signup {
            email: "ana@example.com".into(),
            password: "s3cret!".into(),
        };
        let mut first = Session::default();
        let mut second = Session::default();
        local
            .handle(0, &mut first, &signup)
            .map_err(|_| anyhow::anyhow!("worker crashed"))?;
        local.advance_ms(3000);
        local
            .handle(0, &mut second, &signup)
            .map_err(|_| anyhow::anyhow!("worker crashed"))?;
        // The slow first response arrives last: its cookie wins.
        let mut cookie = if first.is_modified() { first } else { second };
        let otp = local
            .latest_code("ana@example.com")
            .map(|o| o.digits().to_string())
            .unwrap_or_default();
        let verify = Request::Verify {
            email: "ana@example.com".into(),
            otp,
        };
        let r = local
            .handle(0, &mut cookie, &verify)
            .map_err(|_| anyhow::anyhow!("worker crashed"))?;
        println!("{variant:<12} verify -> {} {}: {}", r.status(), r.code, r.message);
    }
    Ok(())
}
