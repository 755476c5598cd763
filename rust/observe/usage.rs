//! Token usage read from a response as it passes through: the `usage` block vLLM puts at the
//! end of a JSON answer, or in the last event of a stream that asked for it
//! (`stream_options.include_usage`). A stream without one is counted as one completion token
//! per content event (vLLM sends a token per event), with no prompt tokens: an estimate, used
//! only where nothing better exists.

/// The end of the body is kept; `usage` is always near it.
const TAIL: usize = 2048;

#[derive(Debug, Default)]
pub struct UsageScan {
    tail: Vec<u8>,
    events: u64,
}

impl UsageScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.events += count(chunk, b"data: {") as u64;
        // Only the end of a large chunk can matter: copy no more than that.
        let end = &chunk[chunk.len().saturating_sub(TAIL)..];
        if self.tail.len() + end.len() > 2 * TAIL {
            let keep = TAIL.saturating_sub(end.len()).min(self.tail.len());
            self.tail.drain(..self.tail.len() - keep);
        }
        self.tail.extend_from_slice(end);
    }

    /// (prompt tokens, completion tokens).
    pub fn result(&self) -> Option<(u64, u64)> {
        parse_usage(&self.tail).or_else(|| (self.events > 0).then_some((0, self.events.saturating_sub(1))))
    }
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// The last `"usage": {...}` object with numbers in it.
pub fn parse_usage(body: &[u8]) -> Option<(u64, u64)> {
    let at = body.windows(8).rposition(|w| w == b"\"usage\":")?;
    let rest = &body[at + 8..];
    let start = rest.iter().position(|b| *b == b'{')?;
    let end = rest[start..].iter().position(|b| *b == b'}')? + start;
    let obj: serde_json::Value = serde_json::from_slice(&rest[start..=end]).ok()?;
    let n = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
    let prompt = n("prompt_tokens").unwrap_or(0);
    let completion = n("completion_tokens").or_else(|| n("total_tokens").map(|t| t.saturating_sub(prompt)))?;
    Some((prompt, completion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answer() {
        let body = br#"{"id":"x","choices":[{"text":"}"}],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8,"prompt_tokens_details":null}}"#;
        let mut s = UsageScan::default();
        for c in body.chunks(7) {
            s.feed(c);
        }
        assert_eq!(s.result(), Some((12, 8)));
    }

    #[test]
    fn stream_with_and_without_usage() {
        let mut s = UsageScan::default();
        s.feed(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n");
        s.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n");
        s.feed(b"data: [DONE]\n\n");
        assert_eq!(s.result(), Some((0, 2)));
        s.feed(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
        );
        assert_eq!(s.result(), Some((5, 2)));
    }
}
