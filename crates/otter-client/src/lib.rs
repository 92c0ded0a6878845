//! The client side of otter's HTTP APIs, shared by the `otter` CLI and anything else that talks
//! to a server or a device:
//!
//! - [`client`]: the admin API client ([`Client`], [`ClientArgs`]) with errors worth reading;
//! - [`upload`]: the resumable uploader that sends an image through an upload session;
//! - [`files`]: local files hashed while streaming, and progress bars;
//! - [`push`]: `otter push`, the sender of ViperHTTP's OTA push protocol (to a ViperHTTP device
//!   or to `otter-agent --listen`).

pub mod client;
pub mod files;
pub mod push;
pub mod upload;

pub use client::{Client, ClientArgs, Error};
