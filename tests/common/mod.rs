//! A real HTTP receiver (tiny_http on 127.0.0.1) for the sink tests: it
//! records every request and answers what the test says.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
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
                };
                let n = {
                    let mut hits = h.lock().unwrap();
                    hits.push(hit.clone());
                    hits.len() - 1
                };
                let reply = respond(n, &hit);
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
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
