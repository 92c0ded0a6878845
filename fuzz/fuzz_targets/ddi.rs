//! hawkBit DDI bodies and credentials (`otter-server`): feedback and configData bodies, and the
//! `Authorization` header, each read from the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_server::protocols::hawkbit::{parse_authorization, parse_config_data, parse_feedback};

fuzz_target!(|data: &[u8]| {
    if let Ok(feedback) = parse_feedback(data) {
        // Blank detail lines never reach a report's message.
        assert!(feedback.details.iter().all(|d| !d.trim().is_empty()));
    }
    let _ = parse_config_data(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(token) = parse_authorization(text).ok().and_then(|c| c.token())
    {
        // A token is never empty and carries no surrounding blanks into its hash.
        assert!(!token.is_empty() && token.trim() == token);
    }
});
