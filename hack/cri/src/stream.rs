//! Exec and Attach through containerd's CRI streaming server, over WebSocket.
//!
//! The CRI `Exec` and `Attach` RPCs only hand back a URL (`http://ADDR:PORT/exec/TOKEN`,
//! `.../attach/TOKEN`) on containerd's streaming server; the kubelet's client then talks
//! SPDY to it. That server (containerd 1.6's `pkg/cri/streaming`, a copy of the kubelet's,
//! with `k8s.io/apiserver/pkg/util/wsstream`) also takes a WebSocket, which is what this
//! module speaks: subprotocol `v4.channel.k8s.io`, every binary message one channel byte
//! then data. Channels: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error (v4: one
//! JSON `metav1.Status` once the command or the attach is over), 4 resize (unused here).
//!
//! ```ignore
//! let url = rt.exec(ExecRequest { container_id, cmd, stdout: true, stderr: true, ..Default::default() })
//!     .await?.into_inner().url;
//! let out = stream::run(&url, None, Duration::from_secs(30)).await?;
//! assert_eq!((out.stdout, out.exit_code), (b"hi\n".to_vec(), 0));
//! ```
//!
//! - `run` reads until the server reports the end on channel 3 (an exec's command exited, an
//!   attach ended because the container exited or its stdin-once stdin was closed) and gives
//!   the exit code: 0 for `Success`, N for `NonZeroExitCode`; any other failure (the command
//!   could not be started, the container is not running) is an `Err`.
//! - `run_until` stops as soon as stdout or stderr holds a given string and hangs up: for an
//!   attach to a container that keeps running (the container goes on; hanging up is how a
//!   client detaches). `Outcome::finished` says whether the server's status came first.
//!
//! What the request must say: stdin only reaches the process when the ExecRequest or
//! AttachRequest has `stdin: true` (and, for Attach, the container was created with
//! `stdin: true`); otherwise the server drops channel 0. `tty` must be false (with a tty,
//! stdout and stderr are one stream, and this module sends no resize).
//!
//! There is no "stdin closed" message in v4 (`v5.channel.k8s.io`, which has one, is not in
//! containerd 1.6), and hanging up closes every channel at once, so a command fed through
//! stdin must stop reading by itself: `head -c N`, `read line`, not `cat`. An Attach
//! container created with `stdin_once: true` gets its stdin closed when the client hangs up.
//!
//! The URL's token is single use and expires a minute after the RPC. The streaming server
//! needs `stream_server_address`/`stream_server_port` in the CRI plugin's config (port "0":
//! a free port, which the URL then carries); only plain `http` URLs are supported (no
//! `enable_tls_streaming`).
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The WebSocket subprotocol asked for (the binary form of the v4 channel protocol).
pub const PROTOCOL: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
/// Stdin goes out in messages of at most this many bytes.
const CHUNK: usize = 32 * 1024;

/// What came back over one exec or attach stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code from the status on channel 3: 0 for `Success`, N for a
    /// `NonZeroExitCode` failure. 0 when no status came (`run_until` only).
    pub exit_code: i32,
    /// The server sent its status (always true for `run`'s `Ok`).
    pub finished: bool,
}

/// Opens `url` (from an ExecResponse or AttachResponse), sends `stdin` on channel 0, and
/// collects stdout and stderr until the server sends its status. An `Err` when the status
/// is a failure other than a non-zero exit code, when the server hangs up without one, or
/// when `timeout` passes first (the message has what came so far).
pub async fn run(url: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<Outcome, String> {
    session(url, stdin, None, timeout).await
}

/// As `run`, but hangs up as soon as stdout or stderr contains `until` (or the server's
/// status comes first: then `finished` is true). For an attach to a container that keeps
/// running, or an exec whose command does not end.
pub async fn run_until(
    url: &str,
    stdin: Option<&[u8]>,
    until: &[u8],
    timeout: Duration,
) -> Result<Outcome, String> {
    session(url, stdin, Some(until), timeout).await
}

async fn session(
    url: &str,
    stdin: Option<&[u8]>,
    until: Option<&[u8]>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let mut status = Vec::new();
    let r = tokio::time::timeout(timeout, exchange(url, stdin, until, &mut out, &mut status)).await;
    match r {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(format!("{url}: {e}{}", so_far(&out, &status))),
        Err(_) => Err(format!(
            "{url}: no end after {timeout:?}{}",
            so_far(&out, &status)
        )),
    }
}

fn so_far(out: &Outcome, status: &[u8]) -> String {
    format!(
        " (stdout {:?}, stderr {:?}, status {:?})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(status)
    )
}

/// `http://` and `https://` URLs become `ws://` and `wss://` ones.
fn ws_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

async fn exchange(
    url: &str,
    stdin: Option<&[u8]>,
    until: Option<&[u8]>,
    out: &mut Outcome,
    status: &mut Vec<u8>,
) -> Result<(), String> {
    let mut req = ws_url(url)
        .into_client_request()
        .map_err(|e| format!("bad URL: {e}"))?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .map_err(|e| match e {
            WsError::Http(r) => format!(
                "upgrade refused: HTTP {}: {}",
                r.status(),
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).trim()
            ),
            e => format!("connect: {e}"),
        })?;
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if proto != PROTOCOL {
        return Err(format!(
            "server chose subprotocol {proto:?}, not {PROTOCOL}"
        ));
    }
    let (mut tx, mut rx) = ws.split();

    // Stdin is sent while the output is read: a large stdin may only be taken as fast as
    // the process reads it, and the process may write first.
    let frames: Vec<Message> = stdin
        .unwrap_or_default()
        .chunks(CHUNK)
        .map(|c| {
            let mut f = Vec::with_capacity(c.len() + 1);
            f.push(STDIN);
            f.extend_from_slice(c);
            Message::binary(f)
        })
        .collect();
    let writer = async move {
        for f in frames {
            tx.send(f)
                .await
                .map_err(|e| format!("sending stdin: {e}"))?;
        }
        Ok::<_, String>(tx)
    };
    tokio::pin!(writer);
    let mut sink = None;

    // Ends true when the server hung up, false when this side is done.
    let hung_up = loop {
        let msg = tokio::select! {
            w = &mut writer, if sink.is_none() => {
                sink = Some(w?);
                continue;
            }
            m = rx.next() => m,
        };
        let data = match msg {
            // The server hangs up once it sent the status, or when it fails.
            None | Some(Ok(Message::Close(_))) => break true,
            Some(Err(e)) => return Err(format!("receive: {e}")),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            // Not sent under v4's binary framing; taken as the same framing if it comes.
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(_)) => continue, // ping (answered by tungstenite), pong, raw frame
        };
        // The server opens with an empty message on the lowest output channel.
        let Some((&ch, payload)) = data.split_first() else {
            continue;
        };
        match ch {
            STDOUT => out.stdout.extend_from_slice(payload),
            STDERR => out.stderr.extend_from_slice(payload),
            ERROR if !payload.is_empty() => {
                status.extend_from_slice(payload);
                let parsed = parse_status(status).inspect_err(|_| status.clear())?;
                if let Some(code) = parsed {
                    out.exit_code = code;
                    out.finished = true;
                    break false;
                }
            }
            _ => {}
        }
        if let Some(u) = until {
            if contains(&out.stdout, u) || contains(&out.stderr, u) {
                break false;
            }
        }
    };
    if hung_up {
        return Err("the server hung up without a status".into());
    }
    // Hang up politely (a close frame); the server may have gone already. Without the sink
    // (stdin still on its way) dropping the connection does it.
    if let Some(mut tx) = sink {
        let _ = tokio::time::timeout(Duration::from_secs(2), tx.close()).await;
    }
    Ok(())
}

/// The exit code from a v4 status (`None` while the JSON is incomplete).
fn parse_status(raw: &[u8]) -> Result<Option<i32>, String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return Ok(None);
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    match field("status") {
        "Success" => Ok(Some(0)),
        "Failure" if field("reason") == "NonZeroExitCode" => {
            let causes = v
                .pointer("/details/causes")
                .and_then(|c| c.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default();
            causes
                .iter()
                .filter(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))
                .find_map(|c| c.get("message")?.as_str()?.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| format!("NonZeroExitCode status without an exit code: {v}"))
        }
        _ => Err(format!(
            "failure status: {} {}",
            field("reason"),
            field("message")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status(br#"{"status":"Success"}"#), Ok(Some(0)));
        let nz = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(parse_status(nz), Ok(Some(3)));
        assert_eq!(parse_status(br#"{"status":"Succ"#), Ok(None));
        let internal = br#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error attaching to container: container is in CONTAINER_EXITED state","reason":"InternalError","details":{"causes":[{"message":"x"}]},"code":500}"#;
        assert!(parse_status(internal).is_err_and(|e| e.contains("CONTAINER_EXITED")));
    }

    /// A local stand-in for the streaming server: answers the upgrade with `proto`, then
    /// sends `script` (stdin echoed back on stdout where an entry is `None`).
    async fn fake_server(proto: &'static str, script: Vec<Option<Message>>) -> String {
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let cb = |_: &Request, mut r: Response| {
                r.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto));
                Ok(r)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb).await.unwrap();
            for m in script {
                let m = match m {
                    Some(m) => m,
                    None => {
                        let Some(Ok(Message::Binary(b))) = ws.next().await else {
                            return;
                        };
                        let mut echo = b.to_vec();
                        echo[0] = STDOUT;
                        Message::binary(echo)
                    }
                };
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            let _ = ws.close(None).await;
        });
        format!("http://{addr}/exec/tok")
    }

    #[tokio::test]
    async fn framing() {
        let t = Duration::from_secs(5);
        let bin = |ch: u8, d: &[u8]| Some(Message::binary([&[ch], d].concat()));
        let status = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#;
        let script = vec![
            Some(Message::binary(Vec::new())),
            bin(STDOUT, b""),
            None,
            Some(Message::text("\u{2}err")),
            bin(STDOUT, b"more"),
            bin(9, b"?"),
            bin(ERROR, status),
        ];
        let url = fake_server(PROTOCOL, script).await;
        let o = run(&url, Some(b"in"), t).await.unwrap();
        assert_eq!((o.stdout, o.stderr), (b"inmore".to_vec(), b"err".to_vec()));
        assert_eq!((o.exit_code, o.finished), (7, true));

        let url = fake_server(PROTOCOL, vec![bin(STDOUT, b"partial")]).await;
        let e = run(&url, None, t).await.unwrap_err();
        assert!(
            e.contains("without a status") && e.contains("partial"),
            "{e}"
        );

        let url = fake_server(PROTOCOL, vec![bin(STDERR, b"a-ready-b")]).await;
        let o = run_until(&url, None, b"ready", t).await.unwrap();
        assert_eq!((o.stderr, o.finished), (b"a-ready-b".to_vec(), false));

        let url = fake_server("channel.k8s.io", vec![]).await;
        assert!(run(&url, None, t).await.is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:1/exec/x"),
            "ws://127.0.0.1:1/exec/x"
        );
        assert_eq!(ws_url("https://h/attach/y"), "wss://h/attach/y");
        assert!(contains(b"abc", b"bc") && !contains(b"abc", b"cb"));
    }
}
