//! The HTTP server's own limits, seen from a raw socket: every refusal is the API's JSON error,
//! and a client that sends slowly or not at all is cut off instead of holding a connection.

use std::time::Duration;

use fanout_leaf::server::LeafHandle;
use fanout_root::http_limits::{MAX_HEADERS, MAX_HEADER_BYTES, MAX_URI_BYTES};
use fanout_root::RootConfig;
use serde_json::Value;
use support::{empty_leaf, start_root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

/// Short enough that the test is quick, long enough that a loaded machine still sends a whole
/// request well within it.
const TIMEOUT: Duration = Duration::from_millis(700);

/// A root over one empty leaf, with every connection timeout short.
async fn root() -> (String, LeafHandle) {
    root_with(RootConfig {
        header_read_timeout: TIMEOUT,
        body_read_timeout: TIMEOUT,
        ..RootConfig::default()
    })
    .await
}

async fn root_with(config: RootConfig) -> (String, LeafHandle) {
    let (leaf, topology) = empty_leaf().await;
    let (http, _root) = start_root(&topology, config).await;
    (http, leaf)
}

/// Asserts `response` has `status` and the API's JSON error body, with a reason.
async fn assert_json_error(response: reqwest::Response, status: u16) {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], status, "{body}");
    assert!(!body["error"]["reason"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn requests_past_a_limit_get_json_errors() {
    let (http, _leaf) = root().await;
    let client = reqwest::Client::new();
    let url = format!("{http}/v1/search");

    let long_query = "a".repeat(MAX_URI_BYTES);
    let response = client.get(&url).query(&[("q", &long_query)]).send();
    assert_json_error(response.await.unwrap(), 414).await;

    let mut request = client.get(&url).query(&[("q", "apple")]);
    for i in 0..=MAX_HEADERS {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    assert_json_error(request.send().await.unwrap(), 431).await;

    let big = "b".repeat(MAX_HEADER_BYTES);
    let response = client.get(&url).header("x-big", big).send();
    assert_json_error(response.await.unwrap(), 431).await;

    // Below every limit, the same route answers.
    let response = client.get(&url).query(&[("q", "apple")]).send().await;
    assert_eq!(response.unwrap().status(), 200);
}

/// Reads until the server closes the connection; returns what it sent, or `None` if it kept
/// the connection open for `patience`.
async fn read_until_closed(tcp: &mut TcpStream, patience: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(patience, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn silent_half_sent_and_idle_connections_are_closed() {
    let (http, _leaf) = root().await;
    let addr = http.trim_start_matches("http://");
    let patience = TIMEOUT * 10;

    // Connects and sends nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut silent, patience).await.is_some());

    // Sends half a head and stops ("slowloris").
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(read_until_closed(&mut half, patience).await.is_some());

    // A keep-alive connection that was answered once, then sits idle.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let asked = std::time::Instant::now();
    let answered = read_until_closed(&mut idle, patience).await.unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    // Closed by the idle timeout, not after the answer: kept alive, then cut.
    assert!(
        !answered.to_ascii_lowercase().contains("connection: close"),
        "{answered}"
    );
    assert!(
        asked.elapsed() >= TIMEOUT,
        "closed after {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_a_408() {
    let (http, _leaf) = root().await;
    let addr = http.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"q\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut tcp, TIMEOUT * 10).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["status"], 408, "{body}");
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answers_is_cut_off() {
    // Only the write timeout is short: the connection must not end by idling.
    let (http, _leaf) = root_with(RootConfig {
        header_read_timeout: Duration::from_secs(120),
        write_timeout: TIMEOUT,
        ..RootConfig::default()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket
        .connect(http.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    // Pipelined requests whose 404s echo a 40 KB path: megabytes of answers, none read.
    let path = format!("/{}", "p".repeat(40_000));
    tokio::spawn(async move {
        for _ in 0..200 {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            if writer.write_all(request.as_bytes()).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    tokio::time::sleep(TIMEOUT * 4).await;
    // The root gave up writing: what it sent before is there, then the end.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(TIMEOUT * 10, reader.read_to_end(&mut sink)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after {} bytes",
        sink.len()
    );
    assert!(sink.len() < 200 * 40_000, "every answer was written");
}
