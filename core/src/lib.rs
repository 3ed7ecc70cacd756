//! otpsim-core: the signup/OTP-verification flow under test.
//!
//! It knows nothing of simulation. It holds the domain ([`domain`]), the
//! ports a flow runs against ([`ports`], [`store`]), the three variants of
//! the flow ([`flows`]), and the platform facade ([`platform`]) that lets
//! the same code run on std threads, loom and shuttle in one build.

#![warn(missing_docs)]

pub mod crypto;
pub mod domain;
pub mod flows;
pub mod local;
pub mod platform;
pub mod ports;
pub mod store;

pub use domain::{Code, Email, Kind, Otp, Request, Response, Session, SessionData, TempId};
pub use flows::{DbMode, Flow, FlowConfig, Handled, SeedFixSwitches, Variant};
pub use platform::Platform;
pub use ports::{Mail, Ports, Sent, WorkerCrashed, WorkerMemory};
pub use store::{Db, DbError, KeptStatement, Prepared, StatementHook, Store};
