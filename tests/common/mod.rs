//! A real HTTP receiver (tiny_http on 127.0.0.1) for the sink tests: it
//! records every request and answers what the test says; and a receiver
//! that is down, taking connections and closing them unanswered.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The status the receiver answered with (`None` while it decides).
    pub status: Option<u16>,
}

impl Hit {
    /// Whether the receiver took the request (a 2xx answer).
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What a receiver answers: status, extra headers, body, and a delay first.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: String::new(), delay: Duration::ZERO }
    }
}

pub type Respond = dyn Fn(usize, &Hit) -> Reply + Send + Sync;

/// A real HTTP server (tiny_http) recording every request.
pub struct Receiver {
    server: Arc<tiny_http::Server>,
    hits: Arc<Mutex<Vec<Hit>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start(port: u16, respond: Box<Respond>) -> Receiver {
        let server = Arc::new(tiny_http::Server::http(("127.0.0.1", port)).unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&server), Arc::clone(&hits));
        let thread = std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let hit = Hit {
                    at: Instant::now(),
                    url: request.url().to_owned(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|f| (f.field.as_str().as_str().to_ascii_lowercase(), f.value.as_str().to_owned()))
                        .collect(),
                    body,
                    status: None,
                };
                let n = {
                    let mut hits = h.lock().unwrap();
                    hits.push(hit.clone());
                    hits.len() - 1
                };
                let reply = respond(n, &hit);
                h.lock().unwrap()[n].status = Some(reply.status);
                std::thread::sleep(reply.delay);
                let mut response = tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
                for (k, v) in reply.headers {
                    response = response.with_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
                }
                let _ = request.respond(response);
            }
        });
        Receiver { server, hits, thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.server.server_addr().to_ip().unwrap().port()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The requests it answered with a 2xx.
    pub fn accepted(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(Hit::accepted).collect()
    }

    /// The requests it answered with anything else.
    pub fn failed(&self) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.status.is_some() && !h.accepted()).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A receiver that is down: it takes each connection on its port, reads
/// the request head and closes the connection unanswered, the way a
/// receiver that crashed behind a load balancer fails. The
/// `X-Auditwatch-Alert-Id` of each request it failed goes down the channel
/// `start` returns, so a test waits for failures instead of sleeping.
/// Dropping it frees the port.
pub struct Down {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Down {
    pub fn start(port: u16) -> (Down, mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let id = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case("x-auditwatch-alert-id").then(|| v.trim().to_owned())
                });
                drop(stream); // unanswered
                if let Some(id) = id {
                    let _ = tx.send(id);
                }
            }
        });
        (Down { port, stop, thread: Some(thread) }, rx)
    }
}

impl Drop for Down {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
