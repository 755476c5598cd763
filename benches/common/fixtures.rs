//! Seeded benchmark inputs, the same on every run and machine.

use lora_router::util::rng::SeededRng;

const PROMPT_BODY: &str = "I am maintaining a service written in Python that exposes a REST API for our \
billing team. Since last week's deploy, some requests time out after thirty seconds and the logs show a \
stack trace from the database driver. The service runs behind a load balancer with four replicas, each \
with a connection pool of twenty connections. I suspect the pool is exhausted when a batch job runs at the \
top of every hour, because the timeouts cluster around that time. The batch job opens a transaction, reads \
about fifty thousand rows, computes invoices and writes them back in one commit. Could you explain how \
connection pooling interacts with long transactions, how to confirm that the pool is the bottleneck using \
metrics we already export, and which changes are safest: raising the pool size, splitting the batch into \
smaller transactions, moving the batch to a read replica, or adding a statement timeout? Please also \
mention what to watch for in the database itself, such as lock waits and idle-in-transaction sessions, \
and how to roll out the change without downtime. ";

/// A realistic chat prompt of exactly `bytes` bytes (ASCII), built by repeating a paragraph.
pub fn prompt(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes);
    while s.len() < bytes {
        s.push_str(PROMPT_BODY);
    }
    s.truncate(bytes);
    s
}

/// `n` distinct keywords: 80% single pseudo-words, 20% two-word phrases, drawn with English
/// letter frequencies so the automaton cannot skip text by a rare byte, none of which occur
/// in the prompt; plus `hits` that do occur in it ("python", "stack trace", "transaction").
pub fn keywords(n: usize, hits: usize, seed: u64) -> Vec<String> {
    const FREQ: &str =
        "eeeeeeeeeeeettttttttaaaaaaaaoooooooiiiiiiinnnnnnnsssssshhhhhhrrrrrrdddllllcccuuummmwwffggyyppbbvkjxqz";
    let letters: Vec<char> = FREQ.chars().collect();
    let prompt = prompt(2048).to_lowercase();
    let mut rng = SeededRng::new(seed);
    let word =
        |rng: &mut SeededRng| -> String { (0..4 + rng.below(6)).map(|_| letters[rng.below(letters.len())]).collect() };
    let mut out: Vec<String> =
        ["python", "stack trace", "transaction"].iter().take(hits).map(|s| s.to_string()).collect();
    while out.len() < n {
        let k =
            if out.len().is_multiple_of(5) { format!("{} {}", word(&mut rng), word(&mut rng)) } else { word(&mut rng) };
        if !out.contains(&k) && !prompt.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// The keyword rules a config carries: `n` keywords spread over four categories, with the
/// `hits` (keywords the prompt contains) in "technical".
pub fn keyword_rules_yaml(n: usize, hits: usize) -> String {
    let kws = keywords(n, hits, 42);
    let (found, others) = kws.split_at(hits);
    let cats = ["technical", "medical", "legal", "finance"];
    let mut out = String::from("keyword_rules:\n");
    for (ci, cat) in cats.iter().enumerate() {
        let mut mine: Vec<String> = if ci == 0 { found.iter().map(|k| format!("{k:?}")).collect() } else { Vec::new() };
        mine.extend(others.iter().enumerate().filter(|(i, _)| i % cats.len() == ci).map(|(_, k)| format!("{k:?}")));
        out.push_str(&format!("  - {{category: \"{cat}\", keywords: [{}]}}\n", mine.join(", ")));
    }
    out
}
