//! otter's device side, for embedded Linux: what runs on the device, and nothing of the server.
//!
//! - [`agent`]: the update agent ([`AgentArgs`]): A/B slots, boot checks that commit or roll
//!   back, checks with the server, resumable downloads verified by length, SHA-256 and (for
//!   signed products) the root of trust, reports, and MQTT wake-ups;
//! - [`receiver`]: the ViperHTTP OTA push receiver the agent serves with `--listen`;
//! - `state`: the agent's state file.
//!
//! The `otter-agent` binary runs [`AgentArgs`]; the `otter` binary's `otter agent` runs the same.
//! This crate links neither the server, the store, sqlx nor object_store, which keeps the device
//! binary small.

pub mod agent;
pub mod receiver;
mod state;

pub use agent::AgentArgs;
