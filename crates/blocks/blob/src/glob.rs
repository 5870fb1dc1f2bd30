//! The wildcards of policy actions and resources: `*` (any run, `/` included) and `?` (any
//! one byte). Written here because IAM's matching is this small; it is not shell globbing.

/// Whether `text` matches `pattern`, in O(len(pattern) * len(text)) at worst.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was and which text position it is currently standing for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn wildcards() {
        assert!(glob_match(b"site/*", b"site/a/b.html"));
        assert!(glob_match(b"s3:*", b"s3:GetObject"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*.jpg", b"x/y.jpg"));
        assert!(!glob_match(b"*.jpg", b"x/y.png"));
        assert!(!glob_match(b"site/*", b"other/a"));
        assert!(!glob_match(b"site", b"site/a"));
    }
}
