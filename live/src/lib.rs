//! otpsim-live: the scenario files of otpsim against real servers.
//!
//! - [`serve`]: `otpsim serve`, the flows of otpsim-core as a real web app.
//! - [`target`]: target files, how to start and talk to a server.
//! - [`smtp`]: the SMTP sink that takes the server's mail.
//! - [`proxy`]: the gating reverse proxy that holds each response.
//! - [`burst`]: requests of one instant, released by their last bytes.
//! - [`port`]: ports for an app's instances, which bind them themselves.
//! - [`run`]: the live executor, one network schedule.
//! - [`clock`]: scenario time, and the app's clock where it is controlled.
//! - [`pause`]: a pause before each of the app's steps, so that requests
//!   released together meet inside the server.
//! - [`check`]: many schedules, judged.
//! - [`init`]: a draft target file from a running app (`otpsim init target`).
//! - [`stress`]: real threads or tokio tasks against the flows in-process,
//!   judged by the same checker (`otpsim stress`).

#![warn(missing_docs)]

pub mod burst;
pub mod check;
pub mod clock;
pub mod explore;
pub mod init;
pub mod load;
pub mod pause;
pub mod port;
pub mod proxy;
pub mod run;
pub mod serve;
pub mod smtp;
pub mod stress;
pub mod target;
pub mod wire;
