//! otter's application layer: the use cases (publish, ingest, check-in, report, tokens, access)
//! that every adapter — the admin API, the native device API, each device protocol, the MQTT
//! notifier — calls. It knows nothing of HTTP.

pub mod settings;
