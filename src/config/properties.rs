//! The Java properties syntax Kafka's `server.properties` is written in (`java.util.Properties.load`):
//! `key=value`, `key: value` or `key value`; `#` and `!` comment lines; a line ending in an odd number
//! of backslashes continues on the next (whose leading blanks are dropped); `\t \n \r \f \uXXXX`
//! escapes, and a backslash before any other character stands for that character.

/// One `key=value` pair and the line it starts on (1-based), for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses `text`; the only malformed input Java rejects is a bad `\uXXXX` escape.
pub fn parse(text: &str) -> Result<Vec<Property>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
        i += 1;
        let first = trim_start(first);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: only the start of a logical line can be a comment.
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) && i < lines.len() {
            logical.pop();
            let next = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
            logical.push_str(trim_start(next));
            i += 1;
        }
        if ends_with_odd_backslashes(&logical) {
            // A continuation at the end of the file: Java drops the lone backslash.
            logical.pop();
        }
        let (key, value) = split_key_value(&logical);
        out.push(Property {
            key: unescape(key).map_err(|e| format!("line {start}: {e}"))?,
            value: unescape(value).map_err(|e| format!("line {start}: {e}"))?,
            line: start,
        });
    }
    Ok(out)
}

/// Java's whitespace here is space, tab and form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn trim_start(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key runs to the first unescaped `=`, `:` or blank; then blanks, at most one `=` or `:`, and
/// blanks again precede the value. Both halves are still escaped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = trim_start(&line[key_end..]);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = trim_start(r);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("malformed \\uxxxx escape \\u{hex}"))?;
                // A UTF-16 surrogate pair arrives as two escapes.
                if (0xD800..0xDC00).contains(&code) {
                    let rest = chars.as_str();
                    let low = rest
                        .strip_prefix("\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|l| (0xDC00..0xE000).contains(l))
                        .ok_or_else(|| format!("unpaired surrogate \\u{hex}"))?;
                    chars = rest[6..].chars();
                    let c = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    out.push(char::from_u32(c).ok_or("bad surrogate pair")?);
                } else {
                    out.push(char::from_u32(code).ok_or_else(|| format!("bad \\u{hex}"))?);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text =
            "# comment\n! also a comment\n\n  a=1\nb : 2\r\nc 3\nd\ne=\nf = x = y\n\t g:h:i\n";
        assert_eq!(
            kv(text),
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", ""),
                pair("e", ""),
                pair("f", "x = y"),
                pair("g", "h:i"),
            ]
        );
    }

    #[test]
    fn continuation_lines_join_without_leading_blanks() {
        let text = "listeners=PLAINTEXT://:9092,\\\n    CONTROLLER://:9093\nnext=1\n# x \\\nnot=continued\n";
        assert_eq!(
            kv(text),
            vec![
                pair("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
                pair("next", "1"),
                pair("not", "continued"),
            ]
        );
        // An even number of backslashes is an escaped backslash, not a continuation.
        assert_eq!(kv("a=x\\\\\nb=y"), vec![pair("a", "x\\"), pair("b", "y")]);
        // A comment line does not continue, and a line after a continuation is not a comment.
        assert_eq!(kv("a=1\\\n#2\n"), vec![pair("a", "1#2")]);
        assert_eq!(kv("a=1\\"), vec![pair("a", "1")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            kv("key\\ with\\=odd\\:chars = v\\tw\\u0041\\\\\\q\n"),
            vec![pair("key with=odd:chars", "v\twA\\q")]
        );
        assert_eq!(kv("e=\\uD83D\\uDE00")[0].1, "\u{1F600}");
        let err = parse("a=1\nb=\\u12G4\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse("b=\\u12").is_err());
        assert_eq!(parse("x=1\n\ny=2").unwrap()[1].line, 3);
    }
}
