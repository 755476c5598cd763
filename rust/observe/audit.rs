//! The audit log: one JSON line per request, written by a background thread so the request
//! path only pays for sending a string down a channel. Lines are flushed whenever the queue
//! runs empty, and on shutdown.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;

pub struct AuditLog {
    path: String,
    tx: Mutex<Option<Sender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    pub fn open(path: &str) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = channel::<String>();
        let writer = std::thread::Builder::new().name("lora-router-audit".into()).spawn(move || {
            let mut out = BufWriter::new(file);
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
                while let Ok(more) = rx.try_recv() {
                    let _ = out.write_all(more.as_bytes());
                    let _ = out.write_all(b"\n");
                }
                let _ = out.flush();
            }
            let _ = out.flush();
        })?;
        Ok(AuditLog { path: path.to_string(), tx: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)) })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn write(&self, line: String) {
        if let Ok(tx) = self.tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let _ = tx.send(line);
            }
        }
    }

    /// Stops the writer after it has written everything queued.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(w) = w.take() {
                let _ = w.join();
            }
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}
