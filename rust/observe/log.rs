//! Lines the native core writes to stderr, beside the Python layer's log lines: events
//! (`info`, `warn`), and warnings that could repeat on every request (signals that failed,
//! suggestions the router ignored), which each source says at most once per interval, with
//! how many it left unsaid.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::time::rfc3339_now;

const INTERVAL: Duration = Duration::from_secs(10);

fn line(level: &str, message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{} {level} lora_router.core: {message}", rfc3339_now());
}

pub fn info(message: &str) {
    line("INFO", message);
}

pub fn warn(message: &str) {
    line("WARNING", message);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Warning {
    /// The signal failed and abstained.
    Failed,
    /// The deciding classifier suggested something the router could not honour.
    IgnoredHint,
}

/// When a signal last warned of a kind, and how many warnings it left unsaid since.
type LastWarned = HashMap<(Arc<str>, Warning), (Instant, u64)>;

#[derive(Default)]
pub struct SignalWarnings {
    last: Mutex<LastWarned>,
}

impl SignalWarnings {
    pub fn warn(&self, signal: &Arc<str>, kind: Warning, message: &str) {
        let now = Instant::now();
        let key = (signal.clone(), kind);
        let unsaid = {
            let Ok(mut last) = self.last.lock() else { return };
            match last.get_mut(&key) {
                Some((at, unsaid)) if now.duration_since(*at) < INTERVAL => {
                    *unsaid += 1;
                    return;
                }
                Some((at, unsaid)) => {
                    *at = now;
                    std::mem::take(unsaid)
                }
                None => {
                    last.insert(key, (now, 0));
                    0
                }
            }
        };
        let more = if unsaid > 0 {
            format!(" ({unsaid} more like it from {signal} since the last warning)")
        } else {
            String::new()
        };
        warn(&format!("{message}{more}"));
    }
}
