//! The `Host` header (`otter-server`): a value otter accepts becomes the start of the download
//! URLs it hands out without `--public-url`, so it must make a URL with that host and port and
//! nothing else (no path, query, fragment or user info).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_server::download::is_host_and_port;

fuzz_target!(|data: &[u8]| {
    let Ok(host) = std::str::from_utf8(data) else {
        return;
    };
    if is_host_and_port(host) {
        let base = format!("http://{host}");
        let url = url::Url::parse(&format!("{base}/m/x"))
            .unwrap_or_else(|e| panic!("Host {host:?} accepted, but {base}/m/x is no URL: {e}"));
        assert_eq!(url.path(), "/m/x", "Host {host:?}");
        assert!(
            url.query().is_none() && url.fragment().is_none(),
            "Host {host:?}"
        );
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "Host {host:?}"
        );
    }
});
