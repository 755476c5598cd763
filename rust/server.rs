//! The accept loop shared by the router and the simulator, the process-wide tokio runtime,
//! and a handle that stops a server gracefully: stop accepting, let in-flight requests
//! finish (up to a drain timeout), tell what is still open that time is up (`ending`: open
//! streams then send their final event), and return.

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::proxy::body::BoxError;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// How long responses still open when the drain time runs out get to write their last bytes.
const FINAL_WRITE: Duration = Duration::from_secs(2);

/// The process's tokio runtime. The first caller fixes the worker count (0 = one per core);
/// later callers share it.
pub fn runtime(threads: usize) -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 0 {
            b.worker_threads(threads);
        }
        b.thread_name("lora-router").enable_all().build().expect("cannot start the tokio runtime")
    })
}

pub fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("cannot resolve listen address {host}:{port}"))
    })
}

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

pub struct ServerHandle {
    pub local_addr: SocketAddr,
    /// `Some(drain)` once asked to stop.
    shutdown: watch::Sender<Option<Duration>>,
    done: Option<oneshot::Receiver<()>>,
}

impl ServerHandle {
    /// Asks the server to stop, giving requests in flight `drain` to finish; does not wait.
    pub fn signal_stop(&self, drain: Duration) {
        let _ = self.shutdown.send(Some(drain));
    }

    /// Stops the server and waits until it has drained. Call from outside the runtime.
    pub fn stop(mut self, drain: Duration) {
        self.signal_stop(drain);
        if let Some(done) = self.done.take() {
            let _ = done.blocking_recv();
        }
    }

    /// Waits until the server has stopped (after `signal_stop`).
    pub async fn stopped(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

/// Binds `addr` and serves `handler` on `rt` until stopped. After a stop, requests in flight
/// get the drain time the stop gave to finish; then `ending` is cancelled, and they get a
/// moment to end cleanly.
pub fn spawn<F, Fut, B>(
    rt: &Runtime,
    addr: SocketAddr,
    handler: F,
    ending: CancellationToken,
) -> std::io::Result<ServerHandle>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = {
        let _guard = rt.enter();
        bind(addr)?
    };
    let local_addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(None);
    let (done_tx, done_rx) = oneshot::channel();
    rt.spawn(async move {
        accept_loop(listener, handler, shutdown_rx, ending).await;
        let _ = done_tx.send(());
    });
    Ok(ServerHandle { local_addr, shutdown: shutdown_tx, done: Some(done_rx) })
}

async fn accept_loop<F, Fut, B>(
    listener: TcpListener,
    handler: F,
    mut shutdown: watch::Receiver<Option<Duration>>,
    ending: CancellationToken,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors or a transient error: back off briefly.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let conn = builder.serve_connection(TokioIo::new(stream), service_fn(handler.clone()));
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drain = shutdown.borrow().unwrap_or_default();
    let finished = graceful.shutdown();
    tokio::pin!(finished);
    tokio::select! {
        _ = &mut finished => return,
        _ = tokio::time::sleep(drain) => {}
    }
    ending.cancel();
    tokio::select! {
        _ = &mut finished => {}
        _ = tokio::time::sleep(FINAL_WRITE) => {}
    }
}
