//! otter's MQTT 3.1.1 client, shared by the server (which publishes update notices) and the
//! device agent (which subscribes to them): [`Publisher`] keeps the retained message each topic
//! should carry and a background task keeps the broker in line with it; [`subscribe`] forwards
//! the messages of a few topics; [`MqttSettings`] says where the broker is and how to reach it
//! (`mqtt://` or `mqtts://`).
//!
//! Why this shape: otter only ever publishes *state* ("the latest release of this channel is
//! …", "this device has an update"), so what matters is that the broker ends up holding the
//! newest message per topic, not that every intermediate message travels. Setting a message
//! never blocks (it updates a map and wakes the task); the task publishes what changed with QoS 1
//! and, after every (re)connection, publishes everything again, so a broker restart (which
//! loses retained messages without persistence) or an outage loses nothing. Reconnection backs
//! off from 100 ms to 10 s.
//!
//! Written here rather than taken from a crate: the client otter needs is a few packets
//! (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ), and the available crates pull a second TLS
//! stack; this one speaks `mqtts://` over the rustls (aws-lc-rs) that otter's HTTP client
//! already uses. It is its own crate so the agent gets it without linking the server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often the connection is kept alive with PINGREQ (the CONNECT announces twice this).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// First and longest wait between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(10));
/// How long connecting (TCP and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the broker is: `mqtt://[user[:password]@]host[:port]` or `mqtts://…` (TLS).
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    /// TLS (`mqtts://`), trusting the platform's CA roots, or only the CAs in `ca_file`.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl PartialEq for MqttSettings {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.host,
            self.port,
            &self.username,
            &self.password,
            self.tls.is_some(),
        ) == (
            &other.host,
            other.port,
            &other.username,
            &other.password,
            other.tls.is_some(),
        )
    }
}

impl MqttSettings {
    /// Parses a broker URL. The client id is `otter-` and a random suffix, so several otter
    /// nodes on one broker do not throw each other off. `ca_file` (PEM) replaces the platform's
    /// CA roots for `mqtts://`.
    pub fn parse(raw: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        // Messages never repeat the URL: it may carry a password.
        let url = url::Url::parse(raw).map_err(|e| format!("the MQTT URL does not parse: {e}"))?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" => (None, 1883),
            "mqtts" => (Some(tls_config(ca_file)?), 8883),
            other => {
                return Err(format!(
                    "the MQTT URL's scheme is {other:?}; use mqtt:// or mqtts://"
                ));
            }
        };
        if tls.is_none() && ca_file.is_some() {
            return Err("an MQTT CA file only applies to mqtts:// URLs".to_owned());
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "the MQTT URL names no host".to_owned())?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
        let password = url.password().map(decode);
        Ok(MqttSettings {
            host,
            port: url.port().unwrap_or(default_port),
            username,
            password,
            client_id: format!("otter-{}", random_suffix()),
            tls,
        })
    }
}

/// 48 random bits as hex: unique enough among the clients of one broker.
fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    hex::encode(bytes)
}

/// The TLS client settings for `mqtts://`: the platform verifier (system CA roots), or a
/// private CA from a PEM file.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let config = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("MQTT CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("MQTT CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("MQTT CA file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "MQTT CA file {} holds no certificate",
                    path.display()
                ));
            }
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt;
            ClientConfig::with_platform_verifier()
                .map_err(|e| format!("the platform's TLS roots: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// What the broker should hold, and what still has to be sent.
#[derive(Default)]
struct Outbox {
    messages: BTreeMap<String, Bytes>,
    dirty: BTreeSet<String>,
}

/// The retained messages otter publishes; cheap to share.
pub struct Publisher {
    outbox: Mutex<Outbox>,
    wake: Notify,
    connected: AtomicBool,
}

impl Publisher {
    /// Starts the connection task; it runs until the returned handle is aborted.
    pub fn start(settings: MqttSettings) -> (Arc<Self>, JoinHandle<()>) {
        let publisher = Arc::new(Publisher {
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(publisher.clone(), settings));
        (publisher, task)
    }

    /// Makes `payload` the retained message of `topic` (an empty payload removes it). Returns at
    /// once; unchanged messages are not sent again.
    pub fn set(&self, topic: String, payload: Bytes) {
        let mut outbox = self.lock();
        if outbox.messages.get(&topic) == Some(&payload) {
            return;
        }
        outbox.dirty.insert(topic.clone());
        outbox.messages.insert(topic, payload);
        drop(outbox);
        self.wake.notify_one();
    }

    /// The topics under `prefix` that carry a message now (to clear those that no longer
    /// should).
    pub fn topics_under(&self, prefix: &str) -> Vec<String> {
        self.lock()
            .messages
            .iter()
            .filter(|(t, p)| t.starts_with(prefix) && !p.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Whether the broker connection is up (for status and tests).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next topic to send, with its message.
    fn next_dirty(&self) -> Option<(String, Bytes)> {
        let mut outbox = self.lock();
        let topic = outbox.dirty.pop_first()?;
        let payload = outbox.messages.get(&topic).cloned().unwrap_or_default();
        Some((topic, payload))
    }

    /// After a (re)connection everything is sent again.
    fn mark_all_dirty(&self) {
        let mut outbox = self.lock();
        let all: Vec<String> = outbox.messages.keys().cloned().collect();
        outbox.dirty.extend(all);
    }

    fn mark_dirty(&self, topics: impl IntoIterator<Item = String>) {
        self.lock().dirty.extend(topics);
    }
}

async fn run(publisher: Arc<Publisher>, settings: MqttSettings) {
    let mut backoff = BACKOFF.0;
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&settings)).await;
        match connected {
            Ok(Ok(stream)) => {
                tracing::info!(host = %settings.host, port = settings.port, "MQTT connected");
                backoff = BACKOFF.0;
                publisher.connected.store(true, Ordering::Relaxed);
                publisher.mark_all_dirty();
                let error = session(&publisher, stream).await;
                publisher.connected.store(false, Ordering::Relaxed);
                tracing::warn!(error = %error, "MQTT connection lost; reconnecting");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, host = %settings.host, port = settings.port,
                    "MQTT broker unreachable; retrying in {backoff:?}");
            }
            Err(_) => tracing::warn!(host = %settings.host, "MQTT connect timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// A connection to the broker: plain TCP or TLS.
trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// Opens the connection (TCP, then TLS for `mqtts://`) and completes CONNECT/CONNACK.
async fn connect(settings: &MqttSettings) -> std::io::Result<Box<dyn Transport>> {
    let tcp = TcpStream::connect((settings.host.as_str(), settings.port)).await?;
    tcp.set_nodelay(true)?;
    let mut stream: Box<dyn Transport> = match &settings.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(settings.host.clone())
                .map_err(|e| std::io::Error::other(format!("{}: {e}", settings.host)))?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            Box::new(connector.connect(name, tcp).await?)
        }
    };
    stream.write_all(&connect_packet(settings)).await?;
    let (kind, body) = read_packet(&mut stream).await?;
    match (kind, body.as_ref()) {
        (CONNACK, [_, 0]) => Ok(stream),
        (CONNACK, [_, code]) => Err(std::io::Error::other(format!(
            "the broker refused the connection: {}",
            connack_reason(*code)
        ))),
        _ => Err(std::io::Error::other("the broker did not answer CONNECT")),
    }
}

fn connack_reason(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version",
        2 => "client id rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown reason",
    }
}

/// Publishes what is dirty until the connection fails; returns why it ended. Messages not
/// acknowledged when it ends are sent again on the next connection.
async fn session<S>(publisher: &Publisher, stream: S) -> std::io::Error
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    // Reading runs in its own task: a packet half read when `select!` picks another branch
    // would otherwise be lost.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let read_task = tokio::spawn(async move {
        loop {
            let packet = read_packet(&mut reader).await;
            let failed = packet.is_err();
            if tx.send(packet).await.is_err() || failed {
                return;
            }
        }
    });
    let mut inflight: HashMap<u16, String> = HashMap::new();
    let mut next_id: u16 = 1;
    let mut ping = tokio::time::interval(KEEP_ALIVE);
    ping.tick().await;
    let error = 'session: loop {
        while let Some((topic, payload)) = publisher.next_dirty() {
            let id = next_id;
            next_id = next_id.checked_add(1).unwrap_or(1);
            if let Err(e) = writer
                .write_all(&publish_packet(&topic, &payload, id))
                .await
            {
                publisher.mark_dirty([topic]);
                break 'session e;
            }
            inflight.insert(id, topic);
        }
        tokio::select! {
            () = publisher.wake.notified() => {}
            _ = ping.tick() => {
                if let Err(e) = writer.write_all(&[PINGREQ, 0x00]).await {
                    break e;
                }
            }
            packet = rx.recv() => match packet {
                Some(Ok((kind, body))) => {
                    if kind >> 4 == PUBACK >> 4 && body.len() >= 2 {
                        inflight.remove(&u16::from_be_bytes([body[0], body[1]]));
                    }
                }
                Some(Err(e)) => break e,
                None => break std::io::Error::other("the connection closed"),
            },
        }
    };
    read_task.abort();
    publisher.mark_dirty(inflight.into_values());
    error
}

/// Subscribes to `topics` (QoS 0) and forwards every message as `(topic, payload)`, reconnecting
/// with the same backoff as the publisher. Retained messages arrive on every (re)connection, so
/// a receiver acting on "something changed" needs no replay logic. Ends when the receiver is
/// dropped.
pub fn subscribe(
    settings: MqttSettings,
    topics: Vec<String>,
) -> tokio::sync::mpsc::Receiver<(String, Bytes)> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut backoff = BACKOFF.0;
        while !tx.is_closed() {
            match tokio::time::timeout(CONNECT_TIMEOUT, connect(&settings)).await {
                Ok(Ok(stream)) => {
                    backoff = BACKOFF.0;
                    let error = listen(stream, &topics, &tx).await;
                    tracing::warn!(error = %error, "MQTT subscription lost; reconnecting");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "MQTT broker unreachable"),
                Err(_) => tracing::warn!("MQTT connect timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    });
    rx
}

async fn listen<S>(
    stream: S,
    topics: &[String],
    tx: &tokio::sync::mpsc::Sender<(String, Bytes)>,
) -> std::io::Error
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rest = BytesMut::new();
    rest.put_u16(1);
    for topic in topics {
        put_str(&mut rest, topic.as_bytes());
        rest.put_u8(0);
    }
    if let Err(e) = writer.write_all(&packet(SUBSCRIBE, &rest)).await {
        return e;
    }
    // Reading in its own task, as in the publisher: select! must not drop a half-read packet.
    let (packets_tx, mut packets) = tokio::sync::mpsc::channel(16);
    let read_task = tokio::spawn(async move {
        loop {
            let packet = read_packet(&mut reader).await;
            let failed = packet.is_err();
            if packets_tx.send(packet).await.is_err() || failed {
                return;
            }
        }
    });
    let mut ping = tokio::time::interval(KEEP_ALIVE);
    ping.tick().await;
    let error = loop {
        tokio::select! {
            _ = ping.tick() => {
                if let Err(e) = writer.write_all(&[PINGREQ, 0x00]).await {
                    break e;
                }
            }
            packet = packets.recv() => match packet {
                Some(Ok((kind, body))) if kind >> 4 == 3 => {
                    if let Some(message) = parse_publish(kind, &body)
                        && tx.send(message).await.is_err()
                    {
                        break std::io::Error::other("the subscriber went away");
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e,
                None => break std::io::Error::other("the connection closed"),
            },
        }
    };
    read_task.abort();
    error
}

/// The topic and payload of a PUBLISH packet (broker input: public so `fuzz/` checks it).
pub fn parse_publish(kind: u8, body: &[u8]) -> Option<(String, Bytes)> {
    let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let topic = std::str::from_utf8(body.get(2..2 + len)?).ok()?.to_owned();
    // QoS 1 and 2 carry a packet id before the payload.
    let skip = if (kind >> 1) & 0x03 > 0 { 2 } else { 0 };
    let payload = Bytes::copy_from_slice(body.get(2 + len + skip..)?);
    Some((topic, payload))
}

const CONNECT: u8 = 0x10;
const SUBSCRIBE: u8 = 0x82;
const CONNACK: u8 = 0x20;
/// PUBLISH with QoS 1 and the retain flag.
const PUBLISH_QOS1_RETAIN: u8 = 0x33;
const PUBACK: u8 = 0x40;
const PINGREQ: u8 = 0xC0;

/// A packet: the type byte, the remaining length, the rest.
fn packet(kind: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(rest.len() + 5);
    out.put_u8(kind);
    let mut len = rest.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
    out.put_slice(rest);
    out.to_vec()
}

/// A length-prefixed string (MQTT's UTF-8 string and binary data).
fn put_str(out: &mut BytesMut, s: &[u8]) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put_slice(&s[..s.len().min(usize::from(u16::MAX))]);
}

fn connect_packet(settings: &MqttSettings) -> Vec<u8> {
    let mut rest = BytesMut::new();
    put_str(&mut rest, b"MQTT");
    rest.put_u8(4); // protocol level: 3.1.1
    let mut flags = 0x02; // clean session: state lives in otter, not in the broker
    if settings.username.is_some() {
        flags |= 0x80;
    }
    if settings.password.is_some() {
        flags |= 0x40;
    }
    rest.put_u8(flags);
    rest.put_u16(u16::try_from(KEEP_ALIVE.as_secs() * 2).unwrap_or(u16::MAX));
    put_str(&mut rest, settings.client_id.as_bytes());
    if let Some(user) = &settings.username {
        put_str(&mut rest, user.as_bytes());
    }
    if let Some(password) = &settings.password {
        put_str(&mut rest, password.as_bytes());
    }
    packet(CONNECT, &rest)
}

fn publish_packet(topic: &str, payload: &[u8], id: u16) -> Vec<u8> {
    let mut rest = BytesMut::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut rest, topic.as_bytes());
    rest.put_u16(id);
    rest.put_slice(payload);
    packet(PUBLISH_QOS1_RETAIN, &rest)
}

/// What a packet body's buffer starts with before its bytes arrive.
const READ_AHEAD: usize = 8 * 1024;

/// Reads one packet: its type byte and the rest (broker input: public so `fuzz/` checks it).
pub async fn read_packet<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<(u8, Bytes)> {
    let kind = reader.read_u8().await?;
    let mut len = 0usize;
    for shift in [0, 7, 14, 21] {
        let byte = reader.read_u8().await?;
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            // The body is read as it arrives: a header may claim up to 256 MiB, and memory is
            // spent on the bytes a broker sends, not on what it says it will send.
            let mut rest = Vec::with_capacity(len.min(READ_AHEAD));
            (&mut *reader)
                .take(len as u64)
                .read_to_end(&mut rest)
                .await?;
            if rest.len() < len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            return Ok((kind, Bytes::from(rest)));
        }
    }
    Err(std::io::Error::other(
        "malformed packet length from the broker",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_never_repeat_the_password() {
        for bad in [
            "http://otter:hunter2@broker",
            "mqtt://otter:hunter2@:1883/",
            "mqtt//otter:hunter2",
        ] {
            let err = MqttSettings::parse(bad, None).unwrap_err();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
    }

    #[test]
    fn urls() {
        let s = MqttSettings::parse("mqtt://otter:p%40ss@broker.lan:1884", None).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("broker.lan", 1884));
        assert_eq!(s.username.as_deref(), Some("otter"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        let s = MqttSettings::parse("mqtt://127.0.0.1", None).unwrap();
        assert_eq!((s.port, s.username, s.tls.is_some()), (1883, None, false));
        let s = MqttSettings::parse("mqtts://broker", None).unwrap();
        assert_eq!((s.port, s.tls.is_some()), (8883, true));
        assert!(MqttSettings::parse("mqtt://broker", Some(Path::new("/ca.pem"))).is_err());
        assert!(
            MqttSettings::parse("mqtts://broker", Some(Path::new("/nonexistent.pem"))).is_err()
        );
        assert!(MqttSettings::parse("http://broker", None).is_err());
        assert!(MqttSettings::parse("broker:1883", None).is_err());
    }

    #[test]
    fn remaining_lengths_use_the_variable_encoding() {
        assert_eq!(packet(PINGREQ, &[]), [0xC0, 0x00]);
        let long = packet(PUBLISH_QOS1_RETAIN, &[0; 321]);
        assert_eq!(&long[..3], &[0x33, 0xC1, 0x02]);
        assert_eq!(long.len(), 3 + 321);
    }

    #[test]
    fn publish_packets_parse() {
        let p = publish_packet("otter/p/stable/latest", b"{}", 7);
        assert_eq!(
            parse_publish(p[0], &p[2..]),
            Some((
                "otter/p/stable/latest".to_owned(),
                Bytes::from_static(b"{}")
            ))
        );
        assert_eq!(parse_publish(0x30, &[0, 9, b'a']), None);
    }

    /// Serves `data`, then the end of the stream, and remembers the largest buffer it was asked
    /// to fill.
    struct Watched<'a> {
        data: &'a [u8],
        largest: usize,
    }

    impl AsyncRead for Watched<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.largest = self.largest.max(buf.remaining());
            let mut data = self.data;
            let poll = std::pin::Pin::new(&mut data).poll_read(cx, buf);
            self.data = data;
            poll
        }
    }

    /// Found by `fuzz/` (target `mqtt`): a broker's packet header claiming 256 MiB made the
    /// reader allocate 256 MiB before a byte of the body had arrived.
    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_the_bytes_arrive() {
        let mut stream = vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F];
        stream.extend_from_slice(b"ten bytes!");
        let mut reader = Watched {
            data: &stream,
            largest: 0,
        };
        let error = read_packet(&mut reader).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(
            reader.largest <= 64 * 1024,
            "a 15-byte stream was offered a {}-byte buffer",
            reader.largest
        );
    }

    #[tokio::test]
    async fn packets_read_back() {
        let publish = publish_packet("otter/p/stable/latest", b"{}", 7);
        let (kind, rest) = read_packet(&mut &publish[..]).await.unwrap();
        assert_eq!(kind, PUBLISH_QOS1_RETAIN);
        assert_eq!(&rest[..2], &[0, 21]);
        assert_eq!(&rest[23..25], &[0, 7]);
        assert_eq!(&rest[25..], b"{}");
        let connack = [CONNACK, 2, 0, 0];
        assert_eq!(
            read_packet(&mut &connack[..]).await.unwrap().1.as_ref(),
            &[0, 0]
        );
    }
}
