//! otter's own device API: `check` and `reports`. Device protocols (later modules) translate to
//! the same index, decision and store calls.

pub mod check;
pub mod reports;
