//! Redis's glob-style pattern matching (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`): `*`, `?`,
//! `[abc]`, `[^a-z]` and `\` escapes, byte by byte as in Redis's `stringmatchlen`.

pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching that backtracks only to the last `*`: O(len(pattern) * len(text))
    // at worst, so hostile patterns like "*a*a*a*...b" cannot blow up.
    let (mut p, mut s) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while s < text.len() {
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            last_star = Some((p, s));
            continue;
        }
        if let Some(next) = match_one(pattern, p, text[s]) {
            p = next;
            s += 1;
            continue;
        }
        match last_star {
            Some((after_star, from)) => {
                last_star = Some((after_star, from + 1));
                p = after_star;
                s = from + 1;
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches the single-byte token at `pattern[p]` (`?`, a class, an escape or a literal)
/// against `ch`; returns the position after the token.
fn match_one(pattern: &[u8], p: usize, ch: u8) -> Option<usize> {
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == ch).then_some(p + 2),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            while i < pattern.len() && pattern[i] != b']' {
                if pattern[i] == b'\\' && i + 1 < pattern.len() {
                    hit |= pattern[i + 1] == ch;
                    i += 2;
                } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
                    let (a, b) = (pattern[i], pattern[i + 2]);
                    hit |= (a.min(b)..=a.max(b)).contains(&ch);
                    i += 3;
                } else {
                    hit |= pattern[i] == ch;
                    i += 1;
                }
            }
            (hit != negate).then_some((i + 1).min(pattern.len()))
        }
        c => (c == ch).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_forms() {
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[ae]llo", b"hillo"));
        assert!(matches(b"h[^e]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"user:\\*", b"user:*"));
        assert!(!matches(b"user:\\*", b"user:1"));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(!matches(b"a*b*c", b"aXXbYY"));
        assert!(!matches(&[b"*a".repeat(400), b"b".to_vec()].concat(), &b"a".repeat(5000)));
        assert!(matches(b"a*", b"a"));
        assert!(matches(b"*", b""));
        assert!(!matches(b"?", b""));
    }
}
