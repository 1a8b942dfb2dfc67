//! The HTTP endpoints of a long-running process: `/metrics` (Prometheus
//! text format), `/healthz` (the process answers) and `/readyz` (state
//! restored and partitions assigned).
//!
//! tiny_http serves them from one thread of their own: a scrape never waits
//! for the pipeline, and the pipeline never waits for a scrape (metrics are
//! atomics in the `prometheus` registry).

use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A running metrics server; it stops when dropped.
pub struct Server {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addr: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve on {addr}: {message}")]
pub struct ServeError {
    addr: String,
    message: String,
}

impl Server {
    pub fn start(addr: &str, registry: Registry, ready: Arc<AtomicBool>) -> Result<Server, ServeError> {
        let server =
            tiny_http::Server::http(addr).map_err(|e| ServeError { addr: addr.to_owned(), message: e.to_string() })?;
        let bound = server.server_addr().to_string();
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    let (status, body, kind) = match request.url() {
                        "/metrics" => {
                            let mut out = Vec::new();
                            match TextEncoder::new().encode(&registry.gather(), &mut out) {
                                Ok(()) => (200, out, "text/plain; version=0.0.4"),
                                Err(e) => (500, e.to_string().into_bytes(), "text/plain"),
                            }
                        }
                        "/healthz" => (200, b"ok\n".to_vec(), "text/plain"),
                        "/readyz" if ready.load(Ordering::Relaxed) => (200, b"ready\n".to_vec(), "text/plain"),
                        "/readyz" => {
                            (503, b"not ready: restoring state or waiting for partitions\n".to_vec(), "text/plain")
                        }
                        _ => (404, b"not found; try /metrics, /healthz or /readyz\n".to_vec(), "text/plain"),
                    };
                    let header = tiny_http::Header::from_bytes("Content-Type", kind).ok();
                    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
                    if let Some(h) = header {
                        response = response.with_header(h);
                    }
                    if let Err(e) = request.respond(response) {
                        tracing::debug!(error = %e, "metrics client went away");
                    }
                }
            })
            .map_err(|e| ServeError { addr: addr.to_owned(), message: e.to_string() })?;
        tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
        Ok(Server { server, thread: Some(thread), addr: bound })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
