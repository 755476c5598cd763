//! A small Redis client: RESP2 over TCP, a pool of kept-open connections, one command at a
//! time per connection. Enough for the quota counters (EVAL, INCRBY); a dependency-free
//! alternative to a full client crate.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply, as much of RESP2 as the counters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Status(String),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

type Conn = BufReader<TcpStream>;

pub struct Redis {
    addr: String,
    db: u32,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl Redis {
    /// `redis://host[:port][/db]`.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Redis, String> {
        let rest = url.strip_prefix("redis://").ok_or_else(|| format!("'{url}' is not a redis:// URL"))?;
        let (hostport, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (h, d.parse().map_err(|_| format!("'{d}' is not a database number"))?),
            Some((h, _)) => (h, 0),
            None => (rest, 0),
        };
        if hostport.is_empty() || hostport.contains('@') {
            return Err(format!("'{url}' needs host[:port] (credentials in the URL are not supported)"));
        }
        let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:6379") };
        Ok(Redis { addr, db, timeout, idle: Mutex::new(Vec::new()) })
    }

    pub fn url(&self) -> String {
        format!("redis://{}/{}", self.addr, self.db)
    }

    /// Runs one command; a connection that fails is dropped, never reused.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, String> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        let reply = tokio::time::timeout(self.timeout, roundtrip(&mut conn, args))
            .await
            .map_err(|_| format!("Redis at {} did not answer within {:?}", self.addr, self.timeout))??;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        match reply {
            Reply::Status(s) if s.starts_with('-') => Err(format!("Redis error: {}", &s[1..])),
            r => Ok(r),
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| format!("connecting to Redis at {} timed out", self.addr))?
            .map_err(|e| format!("cannot connect to Redis at {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let mut conn = BufReader::new(stream);
        if self.db != 0 {
            let db = self.db.to_string();
            match roundtrip(&mut conn, &[b"SELECT", db.as_bytes()]).await? {
                Reply::Status(s) if s == "OK" => {}
                other => return Err(format!("Redis SELECT {db} failed: {other:?}")),
            }
        }
        Ok(conn)
    }
}

async fn roundtrip(conn: &mut Conn, args: &[&[u8]]) -> Result<Reply, String> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.get_mut().write_all(&out).await.map_err(|e| format!("Redis write failed: {e}"))?;
    read_reply(conn).await
}

fn read_reply(
    conn: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + '_>> {
    Box::pin(async move {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await.map_err(|e| format!("Redis read failed: {e}"))?;
        if n == 0 {
            return Err("Redis closed the connection".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (tag, rest) = line.split_at(1.min(line.len()));
        let number = || rest.parse::<i64>().map_err(|_| format!("bad Redis reply line '{line}'"));
        match tag {
            "+" => Ok(Reply::Status(rest.to_string())),
            // Errors keep their '-' so `call` can tell them apart.
            "-" => Ok(Reply::Status(line.to_string())),
            ":" => Ok(Reply::Int(number()?)),
            "$" => {
                let len = number()?;
                if len < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0u8; len as usize + 2];
                conn.read_exact(&mut buf).await.map_err(|e| format!("Redis read failed: {e}"))?;
                buf.truncate(len as usize);
                Ok(Reply::Bulk(Some(buf)))
            }
            "*" => {
                let len = number()?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(read_reply(conn).await?);
                }
                Ok(Reply::Array(items))
            }
            _ => Err(format!("bad Redis reply line '{line}'")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Duration::from_millis(100);
        assert_eq!(Redis::from_url("redis://127.0.0.1:6380/2", t).unwrap().url(), "redis://127.0.0.1:6380/2");
        assert_eq!(Redis::from_url("redis://cache", t).unwrap().url(), "redis://cache:6379/0");
        assert!(Redis::from_url("http://x", t).is_err());
        assert!(Redis::from_url("redis://u:p@x", t).is_err());
        assert!(Redis::from_url("redis://x/y", t).is_err());
    }

    #[test]
    fn parses_replies() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 256];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(b"*3\r\n:7\r\n$2\r\n42\r\n$-1\r\n").await.unwrap();
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(b"-ERR nope\r\n").await.unwrap();
            });
            let r = Redis::from_url(&format!("redis://{addr}"), Duration::from_secs(2)).unwrap();
            let reply = r.call(&[b"EVAL", b"x", b"0"]).await.unwrap();
            assert_eq!(reply, Reply::Array(vec![Reply::Int(7), Reply::Bulk(Some(b"42".to_vec())), Reply::Bulk(None)]));
            if let Reply::Array(items) = reply {
                assert_eq!(items[1].int(), Some(42));
            }
            assert_eq!(r.call(&[b"GET", b"k"]).await.unwrap_err(), "Redis error: ERR nope");
        });
    }
}
