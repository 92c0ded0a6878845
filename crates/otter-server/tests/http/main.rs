//! HTTP integration tests: each test starts the real server on 127.0.0.1 (an OS-assigned port)
//! over a temporary data directory and talks to it with reqwest (or raw TCP where a client
//! library would hide what is being tested).

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod admin;
mod arduino;
mod audit;
mod check;
mod connections;
mod ddi;
mod deltas;
mod downloads;
mod files;
mod http1;
mod inputs;
mod iotawatt;
mod limits;
mod manifest;
mod metrics;
mod mqtt;
mod nodes;
mod openapi;
mod ota_backend;
mod pagination;
mod persistence;
mod registry;
mod request_ids;
mod roles;
mod rollouts;
mod s3;
mod sessions;
mod signing;
mod thinx;
mod tokens;
mod ui;
mod ui_fleet;
mod ui_releases;
mod uploads;
mod windows;
