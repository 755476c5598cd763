//! Keyword rules (Semantic Router's v0.1 spelling): OR / AND / NOR over keyword lists,
//! compiled once into at most two aho-corasick automata (case-insensitive, case-sensitive).
//!
//! Matches are substrings, so whole-word checks happen here: a match is rejected when the
//! character next to it is a word character. The check is skipped on a side where the keyword
//! itself ends in CJK, and CJK neighbours never count as word characters, because CJK text
//! has no spaces between words ("合同" inside "签订合同" and "AI" inside "我们的AI模型" match).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::{Evidence, SignalResult};
use crate::plan::{KeywordOperator, KeywordRuleSpec, Plan, PlanError};

pub struct KeywordSignal {
    insensitive: Option<Matcher>,
    sensitive: Option<Matcher>,
    keywords: Vec<Keyword>,
    rules: Vec<Rule>,
    name: Arc<str>,
}

struct Matcher {
    automaton: AhoCorasick,
    /// Pattern id → keywords (across rules) spelled that way.
    owners: Vec<Vec<usize>>,
}

struct Keyword {
    text: Arc<str>,
    check_left: bool,
    check_right: bool,
}

struct Rule {
    category: usize,
    operator: KeywordOperator,
    keywords: std::ops::Range<usize>,
}

impl KeywordSignal {
    pub fn build(
        specs: &[KeywordRuleSpec],
        categories: &HashMap<String, usize>,
        path: &str,
    ) -> Result<KeywordSignal, PlanError> {
        let mut keywords = Vec::new();
        let mut rules = Vec::new();
        // pattern text → pattern id, per automaton
        let mut ci_patterns: Vec<String> = Vec::new();
        let mut ci_owners: Vec<Vec<usize>> = Vec::new();
        let mut ci_ids: HashMap<String, usize> = HashMap::new();
        let mut cs_patterns: Vec<String> = Vec::new();
        let mut cs_owners: Vec<Vec<usize>> = Vec::new();
        let mut cs_ids: HashMap<String, usize> = HashMap::new();

        for (ri, spec) in specs.iter().enumerate() {
            let rpath = format!("{path}.rules[{ri}]");
            let category = *categories.get(&spec.category).ok_or_else(|| {
                PlanError::new(format!("{rpath}.category"), format!("unknown category '{}'", spec.category))
            })?;
            if spec.keywords.is_empty() {
                return Err(PlanError::new(format!("{rpath}.keywords"), "a rule needs at least one keyword"));
            }
            let start = keywords.len();
            for (ki, kw) in spec.keywords.iter().enumerate() {
                if kw.is_empty() {
                    return Err(PlanError::new(format!("{rpath}.keywords[{ki}]"), "empty keyword"));
                }
                let id = keywords.len();
                let (first, last) = (kw.chars().next().unwrap(), kw.chars().next_back().unwrap());
                keywords.push(Keyword {
                    text: Arc::from(kw.as_str()),
                    check_left: spec.whole_word && is_word_char(first),
                    check_right: spec.whole_word && is_word_char(last),
                });
                let (pattern, patterns, owners, ids) = if spec.case_sensitive {
                    (kw.clone(), &mut cs_patterns, &mut cs_owners, &mut cs_ids)
                } else {
                    (kw.to_lowercase(), &mut ci_patterns, &mut ci_owners, &mut ci_ids)
                };
                let pid = *ids.entry(pattern.clone()).or_insert_with(|| {
                    patterns.push(pattern);
                    owners.push(Vec::new());
                    patterns.len() - 1
                });
                owners[pid].push(id);
            }
            rules.push(Rule { category, operator: spec.operator, keywords: start..keywords.len() });
        }

        Ok(KeywordSignal {
            insensitive: Matcher::build(ci_patterns, ci_owners, true, path)?,
            sensitive: Matcher::build(cs_patterns, cs_owners, false, path)?,
            keywords,
            rules,
            name: Arc::from("keyword"),
        })
    }

    /// Which keywords occur in `text` (whole-word rules applied), as a bitmap over keyword ids.
    pub fn find(&self, text: &str) -> Vec<bool> {
        let mut found = vec![false; self.keywords.len()];
        if let Some(m) = &self.insensitive {
            // The automaton folds ASCII case; other scripts are lower-cased first.
            let hay: Cow<str> = if text.is_ascii() { Cow::Borrowed(text) } else { Cow::Owned(text.to_lowercase()) };
            m.scan(&hay, &self.keywords, &mut found);
        }
        if let Some(m) = &self.sensitive {
            m.scan(text, &self.keywords, &mut found);
        }
        found
    }

    /// Rules that hold for `text`: (rule category, keywords that made it hold).
    pub fn matching_rules(&self, text: &str) -> Vec<(usize, Vec<Arc<str>>)> {
        let found = self.find(text);
        let mut out = Vec::new();
        for rule in &self.rules {
            let hits: Vec<usize> = rule.keywords.clone().filter(|&k| found[k]).collect();
            let holds = match rule.operator {
                KeywordOperator::Or => !hits.is_empty(),
                KeywordOperator::And => hits.len() == rule.keywords.len(),
                KeywordOperator::Nor => hits.is_empty(),
            };
            if holds {
                out.push((rule.category, hits.iter().map(|&k| self.keywords[k].text.clone()).collect()));
            }
        }
        out
    }

    /// Among the categories whose rules hold, the one with the highest model score wins
    /// (config order breaks ties). A keyword match is certain, so confidence is 1.
    pub fn evaluate(&self, plan: &Plan, text: &str) -> SignalResult {
        let matched = self.matching_rules(text);
        let mut best: Option<usize> = None;
        for (category, _) in &matched {
            let better = match best {
                None => true,
                Some(b) => plan.categories[*category].best_score() > plan.categories[b].best_score(),
            };
            if better {
                best = Some(*category);
            }
        }
        SignalResult {
            signal: self.name.clone(),
            category: best,
            confidence: if best.is_some() { 1.0 } else { 0.0 },
            decided: best.is_some(),
            evidence: Evidence::Keywords(matched),
            tokens: None,
            elapsed_us: 0,
            hints: None,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn keyword_count(&self) -> usize {
        self.keywords.len()
    }
}

impl Matcher {
    fn build(
        patterns: Vec<String>,
        owners: Vec<Vec<usize>>,
        fold_ascii: bool,
        path: &str,
    ) -> Result<Option<Matcher>, PlanError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(fold_ascii)
            // Standard semantics so overlapping search reports every keyword, including one
            // inside another ("contract" within "contract law").
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| PlanError::new(path, format!("cannot build keyword automaton: {e}")))?;
        Ok(Some(Matcher { automaton, owners }))
    }

    fn scan(&self, hay: &str, keywords: &[Keyword], found: &mut [bool]) {
        for m in self.automaton.find_overlapping_iter(hay) {
            for &k in &self.owners[m.pattern().as_usize()] {
                if found[k] {
                    continue;
                }
                let kw = &keywords[k];
                if kw.check_left && hay[..m.start()].chars().next_back().is_some_and(is_word_char) {
                    continue;
                }
                if kw.check_right && hay[m.end()..].chars().next().is_some_and(is_word_char) {
                    continue;
                }
                found[k] = true;
            }
        }
    }
}

/// A character that continues a word in space-separated scripts.
fn is_word_char(c: char) -> bool {
    (c.is_alphanumeric() || c == '_') && !is_cjk(c)
}

/// Han, kana, hangul and CJK punctuation: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK radicals
        | 0x3000..=0x303F     // CJK symbols and punctuation
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3100..=0x312F     // Bopomofo
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF00..=0xFFEF     // Half- and full-width forms
        | 0x20000..=0x3134F   // CJK extensions B..G
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(rules: &[(&str, KeywordOperator, &[&str], bool, bool)]) -> (KeywordSignal, HashMap<String, usize>) {
        let mut cats = HashMap::new();
        let specs: Vec<KeywordRuleSpec> = rules
            .iter()
            .map(|(c, op, kws, cs, ww)| {
                let n = cats.len();
                cats.entry(c.to_string()).or_insert(n);
                KeywordRuleSpec {
                    category: c.to_string(),
                    operator: *op,
                    keywords: kws.iter().map(|s| s.to_string()).collect(),
                    case_sensitive: *cs,
                    whole_word: *ww,
                }
            })
            .collect();
        (KeywordSignal::build(&specs, &cats, "signals[0]").unwrap(), cats)
    }

    fn holds(s: &KeywordSignal, text: &str) -> Vec<usize> {
        s.matching_rules(text).into_iter().map(|(c, _)| c).collect()
    }

    use KeywordOperator::*;

    #[test]
    fn or_and_nor() {
        let (s, _) = signal(&[
            ("a", Or, &["contract", "lawsuit"], false, true),
            ("b", And, &["python", "error"], false, true),
            ("c", Nor, &["hello"], false, true),
        ]);
        assert_eq!(holds(&s, "Review this contract please"), vec![0, 2]);
        assert_eq!(holds(&s, "python raised an error"), vec![1, 2]);
        assert_eq!(holds(&s, "python is nice, hello"), Vec::<usize>::new());
    }

    #[test]
    fn whole_word_rejects_inner_matches() {
        let (s, _) = signal(&[("a", Or, &["refuge"], false, true)]);
        assert!(holds(&s, "the refugees arrived").is_empty());
        assert_eq!(holds(&s, "a refuge, at last"), vec![0]);
        let (loose, _) = signal(&[("a", Or, &["refuge"], false, false)]);
        assert_eq!(holds(&loose, "the refugees arrived"), vec![0]);
    }

    #[test]
    fn case_rules() {
        let (s, _) = signal(&[("a", Or, &["SQL"], true, true)]);
        assert!(holds(&s, "write sql").is_empty());
        assert_eq!(holds(&s, "write SQL"), vec![0]);
        let (i, _) = signal(&[("a", Or, &["Straße"], false, true)]);
        assert_eq!(holds(&i, "die STRASSE oder die straße"), vec![0]);
    }

    #[test]
    fn cjk_has_no_word_boundaries() {
        let (s, _) = signal(&[("legal", Or, &["合同", "contract"], false, true), ("ai", Or, &["AI"], false, true)]);
        assert_eq!(holds(&s, "请帮我审查这份合同的条款"), vec![0]);
        assert_eq!(holds(&s, "我们的AI模型"), vec![1]);
        assert!(holds(&s, "MAIL").is_empty());
    }

    #[test]
    fn nested_keywords_are_all_reported() {
        let (s, _) = signal(&[("a", And, &["contract", "contract law"], false, true)]);
        assert_eq!(holds(&s, "a question on contract law"), vec![0]);
    }

    #[test]
    fn keyword_match_reports_keywords() {
        let plan = crate::plan::testing::plan();
        let crate::signals::Signal::Keyword(k) = &plan.signals[0] else { panic!("keyword signal expected") };
        let r = k.evaluate(&plan, "How do I parse JSON in Rust and review a contract?");
        // technical (score 1.0) beats legal (0.9).
        assert_eq!(r.category, Some(0));
        assert!(r.decided);
        let Evidence::Keywords(m) = r.evidence else { panic!("expected keyword evidence") };
        assert_eq!(m.len(), 2);
    }
}
